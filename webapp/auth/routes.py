"""Sign in and out."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from sqlalchemy.orm import joinedload

from crm.directory.auth import TooManyAttempts, authenticate
from crm.directory.models import User
from crm.directory.services import actor_for
from crm.errors import InvalidInput
from engine.actor import Actor
from engine.db import utcnow
from webapp.extensions import db, login_manager

bp = Blueprint("auth", __name__)
login_manager.login_view = "auth.login"


class WebUser(UserMixin):
    """The signed-in user as Flask-Login sees it; `.user` is the CRM's record."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.id = user.id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)

    @property
    def actor(self) -> Actor:
        return actor_for(self.user)


@login_manager.user_loader
def load_user(user_id: str) -> WebUser | None:
    # Every request loads the user afresh (a deactivated user is signed out at once); the roles
    # come in the same statement.
    user = db.session.get(User, int(user_id), options=[joinedload(User.role_rows)])
    return WebUser(user) if user is not None and user.active else None


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would turn the sign-in page into a phishing aid.
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    error, status = None, 200
    if request.method == "POST":
        try:
            user = authenticate(
                db.session,
                request.form.get("username", ""),
                request.form.get("password", ""),
                ip=request.remote_addr or "?",
                now=utcnow(),
            )
        except TooManyAttempts:
            error, status = _("Too many failed sign-ins. Wait 15 minutes and try again."), 429
        except InvalidInput:
            error, status = _("Wrong username or password."), 401
        else:
            login_user(WebUser(user), remember=bool(request.form.get("remember")))
            return redirect(_safe_next(request.args.get("next")))
        db.session.commit()  # keep the record of the failed attempt
    return render_template("auth/login.html", error=error), status


@bp.post("/logout")
@login_required
def logout() -> Any:
    logout_user()
    flash(_("You are signed out."))
    return redirect(url_for("auth.login"))
