"""Analytics pages: funnel, stage dwell, forecast, targets, commission and campaign ROI.

One blueprint; `pages.py` holds the funnel, forecast, targets and dashboard pages and
`commission.py` the commission runs, statements and campaign ROI.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("analytics", __name__, url_prefix="/analytics")


def register_analytics(app: Flask) -> None:
    from webapp.analytics import commission, pages  # noqa: F401  (register routes)

    app.register_blueprint(bp)
