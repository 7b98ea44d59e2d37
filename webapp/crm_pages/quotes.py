"""Quote pages: the editor (new and draft revisions), the quote with its approval history,
submission for approval and the customer's acceptance."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from crm.errors import InvalidInput
from crm.quotes.approvals import approval_history
from crm.quotes.editor import (
    QuoteForm,
    price_choices,
    quote_form_of,
    read_quote_form,
    save_quote_form,
)
from crm.quotes.services import accept_quote, get_quote, submit_quote
from crm.sales.services import get_opportunity
from webapp.crm_pages.common import crm_user, field_errors, request_now, require_sign_in
from webapp.extensions import db

bp = Blueprint("crm_quotes", __name__)
bp.before_request(require_sign_in)
BLANK_ROWS = 3


def _editor(
    form: QuoteForm,
    *,
    opportunity_id: int,
    quote_id: int | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Any:
    deal = get_opportunity(db.session, crm_user(), opportunity_id)
    blank = BLANK_ROWS * (2 if request.form.get("more") else 1)
    rows = form.lines + [{} for _ in range(blank)]
    return render_template(
        "crm/quotes/editor.html",
        deal=deal,
        form=form,
        rows=rows,
        quote=get_quote(db.session, crm_user(), quote_id) if quote_id else None,
        products=price_choices(db.session, deal.currency),
        errors=errors or {},
    ), status


@bp.route("/opportunities/<int:opportunity_id>/quotes/new", methods=["GET", "POST"])
def new_quote(opportunity_id: int) -> Any:
    if request.method == "GET":
        return _editor(QuoteForm(), opportunity_id=opportunity_id)
    form = read_quote_form(request.form)
    if request.form.get("more"):
        return _editor(form, opportunity_id=opportunity_id)
    try:
        quote = save_quote_form(
            db.session, crm_user(), form, now=request_now(), opportunity_id=opportunity_id
        )
    except InvalidInput as exc:
        return _editor(form, opportunity_id=opportunity_id, errors=field_errors(exc), status=422)
    flash(_("Quote %(number)s saved as a draft.", number=quote.number))
    return redirect(url_for(".quote", quote_id=quote.id))


@bp.route("/quotes/<int:quote_id>/edit", methods=["GET", "POST"])
def edit_quote(quote_id: int) -> Any:
    quote = get_quote(db.session, crm_user(), quote_id)
    if request.method == "GET":
        return _editor(quote_form_of(quote), opportunity_id=quote.opportunity_id, quote_id=quote.id)
    form = read_quote_form(request.form)
    if request.form.get("more"):
        return _editor(form, opportunity_id=quote.opportunity_id, quote_id=quote.id)
    try:
        save_quote_form(db.session, crm_user(), form, now=request_now(), quote_id=quote.id)
    except InvalidInput as exc:
        return _editor(
            form,
            opportunity_id=quote.opportunity_id,
            quote_id=quote.id,
            errors=field_errors(exc),
            status=422,
        )
    flash(_("Quote %(number)s saved.", number=quote.number))
    return redirect(url_for(".quote", quote_id=quote.id))


@bp.get("/quotes/<int:quote_id>")
def quote(quote_id: int) -> Any:
    user = crm_user()
    found = get_quote(db.session, user, quote_id)
    return render_template(
        "crm/quotes/quote.html",
        quote=found,
        deal=get_opportunity(db.session, user, found.opportunity_id),
        rounds=approval_history(db.session, user, quote_id),
    )


@bp.post("/quotes/<int:quote_id>/submit")
def submit(quote_id: int) -> Any:
    found = submit_quote(db.session, crm_user(), quote_id, now=request_now())
    flash(_("Quote %(number)s sent for approval.", number=found.number))
    return redirect(url_for(".quote", quote_id=quote_id))


@bp.post("/quotes/<int:quote_id>/accept")
def accept(quote_id: int) -> Any:
    found = accept_quote(db.session, crm_user(), quote_id, now=request_now())
    flash(_("Quote %(number)s marked as accepted by the customer.", number=found.number))
    return redirect(url_for(".quote", quote_id=quote_id))
