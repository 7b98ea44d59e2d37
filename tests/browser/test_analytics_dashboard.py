"""The director's dashboard in Chromium: every chart is drawn by Chart.js (screenshot artifact)."""

from __future__ import annotations

from datetime import date, timedelta

from werkzeug.security import generate_password_hash

from crm.customers.services import create_customer
from crm.directory.models import Team
from crm.directory.services import create_user
from crm.sales.services import close_opportunity, create_opportunity, enter_stage
from engine.db import utcnow
from tests.browser.conftest import screenshot, sign_in

PASSWORD = "director pass 1"
CHARTS = ("chart-funnel", "chart-dwell", "chart-forecast", "chart-trend")


def _set_up(app) -> None:
    """A director over one team with a rep and three deals moved through stages this month."""
    from webapp import db

    with app.app_context():
        now = utcnow()
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        director = create_user(
            db.session, "dana", "Dana Director", ["director"], now=start,
            password_hash=generate_password_hash(PASSWORD),
        )  # fmt: skip
        team = Team(name="Dashboard team", manager_id=director.id)
        db.session.add(team)
        db.session.flush()
        rep = create_user(db.session, "rui", "Rui Rep", ["rep"], now=start, team_id=team.id)
        customer = create_customer(db.session, rep, "Chart Co", now=start, owner=rep)
        for index, amount in enumerate(("100000", "50000", "80000")):
            opp = create_opportunity(
                db.session, rep, customer.id, f"Deal {index}", amount, now=start,
                expected_close=date.today() + timedelta(days=10),
            )  # fmt: skip
            enter_stage(db.session, opp.id, "qualification", 10, now=start, by=None)
            if index < 2:
                enter_stage(db.session, opp.id, "needs_analysis", 20,
                            now=start + timedelta(hours=5), by=None)  # fmt: skip
            if index == 0:
                close_opportunity(db.session, opp.id, "won", "price",
                                  now=start + timedelta(hours=9), by=None)  # fmt: skip
        db.session.commit()


def test_browser_director_dashboard_draws_every_chart(live_app, page):
    app, base = live_app
    _set_up(app)
    sign_in(page, base, "dana", PASSWORD)
    page.wait_for_url(f"{base}/**")
    page.goto(f"{base}/analytics/dashboard")
    page.wait_for_function(
        "ids => window.stagecraftCharts && ids.every(id => window.stagecraftCharts[id])",
        arg=list(CHARTS),
    )
    for chart_id in CHARTS:
        drawn = page.evaluate(
            """id => {
                const canvas = document.getElementById(id);
                const pixels = canvas.getContext('2d')
                    .getImageData(0, 0, canvas.width, canvas.height).data;
                let inked = 0;
                for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) inked++; }
                return {width: canvas.width, inked: inked,
                        datasets: window.stagecraftCharts[id].data.datasets.length};
            }""",
            chart_id,
        )
        assert drawn["width"] > 0, chart_id
        assert drawn["inked"] > 500, chart_id  # axes, labels and bars were painted
        assert drawn["datasets"] >= 2, chart_id
    funnel = page.evaluate("window.stagecraftCharts['chart-funnel'].data.datasets[0].data")
    assert funnel[:2] == [3, 2]  # three deals entered qualification, two needs analysis
    assert "Sales dashboard" in page.text_content("h1")
    screenshot(page, "analytics-dashboard")
