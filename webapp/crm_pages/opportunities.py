"""Opportunity pages: the board per pipeline (moves drive the stage task), the deal page with its
win-rate override, and the CSV export."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from crm.csv_export import to_csv
from crm.errors import InvalidInput
from crm.sales.board import (
    NOT_STARTED,
    WON,
    build_board,
    deal_cards,
    move_deal,
    scoped_deals,
    weighted_amount,
)
from crm.sales.models import PIPELINES
from crm.sales.queries import deal_page
from crm.sales.services import set_win_rate_override
from webapp.crm_pages.common import (
    crm_user,
    csv_download,
    field_errors,
    form_int,
    label,
    request_now,
    require_sign_in,
)
from webapp.extensions import db

bp = Blueprint("crm_deals", __name__)
bp.before_request(require_sign_in)


def _pipeline() -> str:
    chosen = request.args.get("pipeline", PIPELINES[0])
    return chosen if chosen in PIPELINES else PIPELINES[0]


@bp.get("/opportunities/board")
def board() -> Any:
    pipeline = _pipeline()
    board = build_board(db.session, crm_user(), pipeline)
    return render_template(
        "crm/deals/board.html",
        board=board,
        pipelines=PIPELINES,
        not_started=NOT_STARTED,
        won=WON,
        last_stage=board.last_stage,
    )


@bp.post("/opportunities/<int:opportunity_id>/move")
def move(opportunity_id: int) -> Any:
    target = (request.form.get("to_stage") or "").strip()
    back_to = request.form.get("back") == "deal"
    try:
        outcome = move_deal(db.session, crm_user(), opportunity_id, target, now=request_now())
    except InvalidInput as exc:
        for messages in field_errors(exc).values():
            flash(_("The deal was not moved: %(reason)s", reason="; ".join(messages)))
        outcome = None
    if outcome is not None and outcome.moved:
        flash(
            _(
                "%(deal)s moved to %(stage)s.",
                deal=outcome.deal.name,
                stage=label(outcome.to_stage or ""),
            )
        )
    elif outcome is not None and outcome.missing:
        flash(
            _(
                "%(deal)s stays in %(stage)s; missing: %(missing)s",
                deal=outcome.deal.name,
                stage=label(outcome.from_stage),
                missing="; ".join(outcome.missing),
            )
        )
    if back_to:
        return redirect(url_for(".deal", opportunity_id=opportunity_id))
    deal = outcome.deal if outcome else None
    return redirect(url_for(".board", pipeline=deal.pipeline if deal else _pipeline()))


def _deal_page(opportunity_id: int, status: int = 200, **form_state: Any) -> Any:
    state = {"errors": {}, "values": {}} | form_state
    return render_template(
        "crm/deals/deal.html", page=deal_page(db.session, crm_user(), opportunity_id), **state
    ), status


@bp.get("/opportunities/<int:opportunity_id>")
def deal(opportunity_id: int) -> Any:
    return _deal_page(opportunity_id)


@bp.post("/opportunities/<int:opportunity_id>/win-rate")
def win_rate(opportunity_id: int) -> Any:
    try:
        value = None if request.form.get("clear") else form_int(request.form, "win_rate")
        set_win_rate_override(db.session, crm_user(), opportunity_id, value)
    except InvalidInput as exc:
        return _deal_page(opportunity_id, 422, errors=field_errors(exc), values=request.form)
    flash(_("Win rate saved."))
    return redirect(url_for(".deal", opportunity_id=opportunity_id))


@bp.get("/opportunities/export.csv")
def export() -> Any:
    pipeline = request.args.get("pipeline") or None
    status = request.args.get("status", "open") or None
    cards = deal_cards(
        db.session, scoped_deals(db.session, crm_user(), pipeline=pipeline, status=status)
    )
    header = [
        _("ID"),
        _("Opportunity"),
        _("Customer"),
        _("Owner"),
        _("Pipeline"),
        _("Stage"),
        _("Status"),
        _("Amount"),
        _("Currency"),
        _("Win rate"),
        _("Weighted"),
        _("Expected close"),
    ]
    rows = (
        [
            c.deal.id,
            c.deal.name,
            c.customer_name,
            c.owner_name,
            c.deal.pipeline,
            c.deal.stage,
            c.deal.status,
            c.deal.amount,
            c.deal.currency,
            c.deal.win_rate,
            weighted_amount(c.deal),
            c.deal.expected_close,
        ]
        for c in cards
    )
    return csv_download(to_csv(header, rows), f"opportunities-{request_now():%Y%m%d}.csv")
