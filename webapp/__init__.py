"""The Flask web app: factory, extensions and the command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

import crm  # noqa: F401  (registers the CRM's tables on the shared Base)
from engine import models as _engine_models  # noqa: F401
from engine.db import Base

ROOT = Path(__file__).resolve().parent.parent
db = SQLAlchemy(model_class=Base)
migrate = Migrate(directory=str(ROOT / "migrations"), render_as_batch=True)


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
    )
    app.config.update(config or {})
    db.init_app(app)
    migrate.init_app(app, db)

    from webapp.cli import register_commands
    from webapp.home import bp as home_bp

    register_commands(app)
    app.register_blueprint(home_bp)
    return app
