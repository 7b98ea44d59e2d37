"""Order pages: the list (finance sees all), one order with installments and receipts, the
receipt and invoice request forms, and the CSV export."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from crm.csv_export import to_csv
from crm.errors import InvalidInput
from crm.orders.queries import ORDER_STATUSES, list_orders, order_detail
from crm.orders.services import register_receipt, request_invoice
from webapp.crm_pages.common import (
    crm_user,
    csv_download,
    field_errors,
    form_date,
    form_text,
    request_now,
    require_sign_in,
)
from webapp.extensions import db

bp = Blueprint("crm_orders", __name__)
bp.before_request(require_sign_in)


def _filters() -> dict[str, Any]:
    status = request.args.get("status", "")
    return {
        "status": status if status in ORDER_STATUSES else "",
        "overdue_only": request.args.get("overdue") == "1",
    }


@bp.get("/orders")
def index() -> Any:
    filters = _filters()
    orders = list_orders(db.session, crm_user(), today=request_now().date(), **filters)
    return render_template(
        "crm/orders/list.html", orders=orders, statuses=ORDER_STATUSES, **filters
    )


@bp.get("/orders/export.csv")
def export() -> Any:
    orders = list_orders(db.session, crm_user(), today=request_now().date(), **_filters())
    header = [
        _("Order"),
        _("Customer"),
        _("Owner"),
        _("Signed on"),
        _("Status"),
        _("Amount"),
        _("Currency"),
        _("Paid"),
        _("Outstanding"),
        _("Overdue"),
    ]
    rows = (
        [
            s.order.number,
            s.customer_name,
            s.owner_name,
            s.order.signed_on,
            s.order.status,
            s.order.amount,
            s.order.currency,
            s.paid,
            s.outstanding,
            s.overdue,
        ]
        for s in orders
    )
    return csv_download(to_csv(header, rows), f"orders-{request_now():%Y%m%d}.csv")


def _order_page(order_id: int, status: int = 200, **form_state: Any) -> Any:
    state = {"receipt_errors": {}, "invoice_errors": {}, "values": {}} | form_state
    return render_template(
        "crm/orders/order.html",
        s=order_detail(db.session, crm_user(), order_id, today=request_now().date()),
        today=request_now().date(),
        **state,
    ), status


@bp.get("/orders/<int:order_id>")
def order(order_id: int) -> Any:
    return _order_page(order_id)


@bp.post("/orders/<int:order_id>/receipts")
def new_receipt(order_id: int) -> Any:
    try:
        received_on = form_date(request.form, "received_on") or request_now().date()
        register_receipt(
            db.session,
            crm_user(),
            order_id,
            form_text("amount", 40),
            received_on,
            now=request_now(),
            reference=form_text("reference", 80) or None,
        )
    except InvalidInput as exc:
        return _order_page(order_id, 422, receipt_errors=field_errors(exc), values=request.form)
    flash(_("Receipt registered."))
    return redirect(url_for(".order", order_id=order_id))


@bp.post("/orders/<int:order_id>/invoice-requests")
def new_invoice_request(order_id: int) -> Any:
    try:
        request_invoice(
            db.session,
            crm_user(),
            order_id,
            form_text("amount", 40),
            form_text("title", 200),
            now=request_now(),
            tax_number=form_text("tax_number", 40) or None,
        )
    except InvalidInput as exc:
        return _order_page(order_id, 422, invoice_errors=field_errors(exc), values=request.form)
    flash(_("Invoice requested; finance will review it."))
    return redirect(url_for(".order", order_id=order_id))
