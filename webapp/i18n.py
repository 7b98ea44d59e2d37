"""Language choice: `?lang=`, then the signed-in user's setting, a cookie, the browser."""

from __future__ import annotations

from flask import Flask, Response, current_app, request
from flask_login import current_user

from webapp.extensions import db


def _requested() -> str | None:
    chosen = request.args.get("lang")
    return chosen if chosen in current_app.config["LANGUAGES"] else None


def select_locale() -> str | None:
    languages = current_app.config["LANGUAGES"]
    requested = _requested()
    if requested:
        return requested
    if getattr(current_user, "is_authenticated", False) and current_user.locale in languages:
        return str(current_user.locale)
    chosen = request.cookies.get("lang")
    if chosen in languages:
        return chosen
    # Browsers say "zh-CN" (or plain "zh"); the catalogue is named "zh_CN".
    browser = request.accept_languages.best_match(["en", "zh-CN", "zh"], default="en")
    return "zh_CN" if browser.startswith("zh") else "en"


def register_language_switch(app: Flask) -> None:
    @app.after_request
    def remember_choice(response: Response) -> Response:
        requested = _requested()
        if requested:
            response.set_cookie(
                "lang", requested, max_age=365 * 86400, samesite="Lax", httponly=True
            )
            if (
                getattr(current_user, "is_authenticated", False)
                and current_user.locale != requested
            ):
                current_user.user.locale = requested
                db.session.commit()
        return response
