"""Customer pages: the searchable list with saved filters and CSV export, and the customer 360."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from crm.activities.models import ACTIVITY_KINDS
from crm.activities.services import log_activity
from crm.csv_export import to_csv
from crm.customers.models import BUYING_ROLES, TIERS
from crm.customers.profile import customer_profile
from crm.customers.queries import (
    POOL,
    CustomerQuery,
    export_customers,
    industry_choices,
    owner_choices,
    parse_customer_query,
    search_customers,
    territory_choices,
)
from crm.customers.services import add_contact
from crm.errors import InvalidInput
from crm.saved_filters import (
    delete_saved_filter,
    get_saved_filter,
    list_saved_filters,
    save_filter,
)
from webapp.crm_pages.common import (
    crm_user,
    csv_download,
    field_errors,
    form_date,
    form_int,
    form_text,
    install_template_helpers,
    page_number,
    request_now,
    require_sign_in,
)
from webapp.extensions import db

bp = Blueprint("crm_customers", __name__)
bp.before_request(require_sign_in)
install_template_helpers(bp)  # app-wide: every page may format money and dates
FILTER_KIND = "customers"


def _query_from(params: dict[str, list[str]]) -> tuple[CustomerQuery, dict[str, list[str]]]:
    try:
        return parse_customer_query(params), {}
    except InvalidInput as exc:
        return CustomerQuery(), field_errors(exc)


@bp.get("/customers")
def index() -> Any:
    user = crm_user()
    query, errors = _query_from(request.args.to_dict(flat=False))
    page = search_customers(db.session, user, query, page=page_number())
    return render_template(
        "crm/customers/list.html",
        page=page,
        query=query,
        params=query.as_params(),
        errors=errors,
        saved_filters=list_saved_filters(db.session, user, FILTER_KIND),
        owners=owner_choices(db.session, user),
        territories=territory_choices(db.session),
        industries=industry_choices(db.session),
        tiers=TIERS,
        pool=POOL,
    ), (422 if errors else 200)


@bp.get("/customers/export.csv")
def export() -> Any:
    query = parse_customer_query(request.args.to_dict(flat=False))
    rows = export_customers(db.session, crm_user(), query)
    header = [
        _("ID"),
        _("Name"),
        _("Tier"),
        _("Industry"),
        _("Territory"),
        _("Owner"),
        _("Phone"),
        _("E-mail"),
        _("Last activity"),
        _("Open deal"),
        _("Created"),
    ]
    text = to_csv(
        header,
        (
            [
                r.customer.id,
                r.customer.name,
                r.customer.tier,
                r.customer.industry,
                r.territory_name,
                r.owner_name,
                r.customer.phone,
                r.customer.email,
                r.customer.last_activity_at,
                r.has_open_deal,
                r.customer.created_at,
            ]
            for r in rows
        ),
    )
    return csv_download(text, f"customers-{request_now():%Y%m%d}.csv")


@bp.post("/customers/filters")
def save_current_filter() -> Any:
    params = parse_qs(request.form.get("query", ""), keep_blank_values=False)
    query = parse_customer_query(params)
    try:
        save_filter(
            db.session,
            crm_user(),
            FILTER_KIND,
            form_text("filter_name", 200),
            query.as_params(),
            now=request_now(),
        )
    except InvalidInput as exc:
        for messages in field_errors(exc).values():
            flash(_("The filter was not saved: %(reason)s", reason="; ".join(messages)))
        return redirect(url_for(".index", **query.as_params()))
    flash(_("Filter saved."))
    return redirect(url_for(".index", **query.as_params()))


@bp.get("/customers/filters/<int:filter_id>")
def apply_filter(filter_id: int) -> Any:
    saved = get_saved_filter(db.session, crm_user(), filter_id)
    query, _errors = _query_from(saved.params)
    return redirect(url_for(".index", **query.as_params()))


@bp.post("/customers/filters/<int:filter_id>/delete")
def delete_filter(filter_id: int) -> Any:
    delete_saved_filter(db.session, crm_user(), filter_id)
    flash(_("Filter deleted."))
    return redirect(url_for(".index"))


def _profile_page(customer_id: int, status: int = 200, **form_state: Any) -> Any:
    found = customer_profile(db.session, crm_user(), customer_id, now=request_now())
    state = {"contact_errors": {}, "activity_errors": {}, "values": {}} | form_state
    return render_template(
        "crm/customers/profile.html",
        p=found,
        buying_roles=BUYING_ROLES,
        activity_kinds=ACTIVITY_KINDS,
        **state,
    ), status


@bp.get("/customers/<int:customer_id>")
def profile(customer_id: int) -> Any:
    return _profile_page(customer_id)


@bp.post("/customers/<int:customer_id>/contacts")
def new_contact(customer_id: int) -> Any:
    try:
        influence = form_int(request.form, "influence")
        add_contact(
            db.session,
            crm_user(),
            customer_id,
            form_text("name", 120),
            title=form_text("title", 120) or None,
            buying_role=form_text("buying_role") or None,
            influence=3 if influence is None else influence,
            phone=form_text("phone", 40) or None,
            email=form_text("email", 255) or None,
        )
    except InvalidInput as exc:
        return _profile_page(
            customer_id, 422, contact_errors=field_errors(exc), values=request.form
        )
    flash(_("Contact added."))
    return redirect(url_for(".profile", customer_id=customer_id) + "#contacts")


@bp.post("/customers/<int:customer_id>/activities")
def new_activity(customer_id: int) -> Any:
    try:
        log_activity(
            db.session,
            crm_user(),
            customer_id,
            form_text("kind", 10),
            form_text("subject", 250),
            now=request_now(),
            body=form_text("body", 20_000) or None,
            next_followup_on=form_date(request.form, "next_followup_on"),
            opportunity_id=form_int(request.form, "opportunity_id"),
        )
    except InvalidInput as exc:
        return _profile_page(
            customer_id, 422, activity_errors=field_errors(exc), values=request.form
        )
    flash(_("Activity recorded."))
    return redirect(url_for(".profile", customer_id=customer_id) + "#activities")
