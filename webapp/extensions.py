"""The Flask extensions, created unbound and attached by the app factory."""

from __future__ import annotations

from pathlib import Path

from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from engine.db import Base

ROOT = Path(__file__).resolve().parent.parent
db = SQLAlchemy(model_class=Base)
migrate = Migrate(directory=str(ROOT / "migrations"), render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
