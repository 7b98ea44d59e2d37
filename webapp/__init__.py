"""The Flask web app: factory, extensions and the command line."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

import crm  # noqa: F401  (registers the CRM's tables, operations and lane rules)
import rules  # noqa: F401  (registers the rule-run table)
from engine import models as _engine_models  # noqa: F401
from webapp.extensions import ROOT, babel, csrf, db, login_manager, migrate

__all__ = ["ROOT", "create_app", "db"]
LANGUAGES = ("en", "zh_CN")
# One Chinese catalogue per area (translations/zh/LC_MESSAGES/<domain>.po), merged at run time.
TRANSLATION_DOMAINS = (
    "messages",
    "designer",
    "stagedesign",
    "ops",
    "opsactions",
    "analytics",
    "commission",
)


def default_database_url(instance_path: str) -> str:
    return f"sqlite:///{Path(instance_path) / 'stagecraft.db'}"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; settings come from `config`, then the environment, then defaults."""
    app = Flask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev-only-change-me"),
        SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL")
        or default_database_url(app.instance_path),
        PROCESSES_DIR=str(ROOT / "processes"),
        FORMS_DIR=str(ROOT / "forms"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("STAGECRAFT_SECURE_COOKIES") == "1",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        BABEL_TRANSLATION_DIRECTORIES=";".join(
            [str(ROOT / "webapp" / "translations")] * len(TRANSLATION_DOMAINS)
        ),
        BABEL_DOMAIN=";".join(TRANSLATION_DOMAINS),
        LANGUAGES=LANGUAGES,
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
    )
    app.config.update(config or {})
    db.init_app(app)
    migrate.init_app(app, db)
    login_manager.init_app(app)
    csrf.init_app(app)

    from webapp.analytics import register_analytics
    from webapp.api import bp as api_bp
    from webapp.auth.routes import bp as auth_bp
    from webapp.cli import register_commands
    from webapp.crm_pages import register_crm_pages
    from webapp.designer import register_designer
    from webapp.errors import register_error_handlers
    from webapp.flashes import register_flash_limit
    from webapp.home import bp as home_bp
    from webapp.i18n import register_language_switch, select_locale
    from webapp.inbox.routes import bp as inbox_bp
    from webapp.inbox.tasks import bp as tasks_bp
    from webapp.inbox.vendor import bp as vendor_bp
    from webapp.ops import register_ops
    from webapp.pool_pages import bp as pool_bp
    from webapp.unit_of_work import register_unit_of_work

    babel.init_app(app, locale_selector=select_locale)
    register_commands(app)
    register_error_handlers(app)
    register_unit_of_work(app)
    register_flash_limit(app)
    register_language_switch(app)
    app.register_blueprint(auth_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(home_bp)
    app.register_blueprint(pool_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(tasks_bp)
    app.register_blueprint(vendor_bp)
    register_crm_pages(app)
    register_designer(app)
    register_ops(app)
    register_analytics(app)
    return app
