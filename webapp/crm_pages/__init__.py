"""The CRM pages: customers, opportunities, quotes, orders, activities, knowledge, CSV import."""

from __future__ import annotations

from flask import Flask

from webapp.crm_pages import activities, csv_io, customers, knowledge, opportunities, orders, quotes

BLUEPRINTS = (
    customers.bp,
    opportunities.bp,
    quotes.bp,
    orders.bp,
    activities.bp,
    knowledge.bp,
    csv_io.bp,
)


def register_crm_pages(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
