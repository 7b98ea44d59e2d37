"""Pool pages: thin views over crm.pool (each parses the form and calls one service)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from crm.customers.models import TIERS
from crm.pool.allocation import ALLOCATING_ROLES, allocate_customers, eligible_reps
from crm.pool.models import TRIGGERS
from crm.pool.services import (
    claim_customer,
    customers_held_by,
    list_customer_pools,
    list_pool_customers,
    release_customer,
)
from crm.pool.settings import (
    EDITING_ROLES,
    delete_recycle_rule,
    get_pool_settings,
    manager_choices,
    preview_for,
    save_policy,
    save_recycle_rule,
    set_claim_limit,
)
from engine.db import utcnow
from webapp.extensions import db

bp = Blueprint("pool", __name__, url_prefix="/pool")
MAX_PREVIEW_DAYS = 60


def _me() -> Any:
    return current_user.user


def _may_edit() -> bool:
    return bool(_me().roles & EDITING_ROLES)


def _ids(name: str) -> list[int]:
    return [int(v) for v in request.form.getlist(name) if v.isdigit()]


def _back() -> Any:
    # Only back to a pool page: a free-form target would be an open redirect.
    pool_id = request.form.get("pool_id", "")
    return redirect(
        url_for("pool.pool", pool_id=int(pool_id)) if pool_id.isdigit() else url_for("pool.index")
    )


@bp.get("/")
@login_required
def index() -> str:
    return render_template(
        "pool/index.html", pools=list_customer_pools(db.session), can_edit=_may_edit()
    )


@bp.get("/<int:pool_id>")
@login_required
def pool(pool_id: int) -> str:
    settings = get_pool_settings(db.session, pool_id)
    tier = request.args.get("tier") or None
    reps = (
        eligible_reps(db.session, settings.pool.territory_id)
        if settings.pool.territory_id is not None
        else []
    )
    return render_template(
        "pool/pool.html",
        settings=settings,
        customers=list_pool_customers(db.session, _me(), pool_id, tier=tier),
        mine=customers_held_by(db.session, _me()),
        reps=reps,
        tiers=TIERS,
        tier=tier,
        can_allocate=bool(_me().roles & ALLOCATING_ROLES),
        can_edit=_may_edit(),
    )


@bp.post("/customers/<int:customer_id>/claim")
@login_required
def claim(customer_id: int) -> Any:
    customer = claim_customer(db.session, _me(), customer_id, now=utcnow())
    flash(_("%(name)s is now yours.", name=customer.name))
    return _back()


@bp.post("/customers/<int:customer_id>/release")
@login_required
def release(customer_id: int) -> Any:
    customer = release_customer(
        db.session, _me(), customer_id, request.form.get("reason", ""), now=utcnow()
    )
    flash(_("%(name)s went back to the pool.", name=customer.name))
    return _back()


@bp.post("/<int:pool_id>/allocate")
@login_required
def allocate(pool_id: int) -> Any:
    chosen = _ids("rep_id") if request.form.get("mode") == "chosen" else None
    result = allocate_customers(
        db.session, _me(), pool_id, _ids("customer_id"), now=utcnow(), to_user_ids=chosen
    )
    flash(
        _(
            "%(given)d customers allocated, %(left)d left in the pool (quotas full).",
            given=len(result.given),
            left=len(result.left),
        )
    )
    return redirect(url_for("pool.pool", pool_id=pool_id))


@bp.get("/<int:pool_id>/settings")
@login_required
def settings(pool_id: int) -> str:
    try:
        ahead = min(max(int(request.args.get("days", "0")), 0), MAX_PREVIEW_DAYS)
    except ValueError:
        ahead = 0
    at = utcnow() + timedelta(days=ahead)
    return render_template(
        "pool/settings.html",
        settings=get_pool_settings(db.session, pool_id),
        pools=[p for p, _n in list_customer_pools(db.session)],
        managers=manager_choices(db.session),
        preview=preview_for(db.session, _me(), pool_id, at),
        at=at,
        ahead=ahead,
        tiers=TIERS,
        triggers=TRIGGERS,
    )


@bp.post("/<int:pool_id>/settings/policy")
@login_required
def policy(pool_id: int) -> Any:
    save_policy(db.session, _me(), pool_id, request.form.to_dict(), now=utcnow())
    flash(_("Pool settings saved."))
    return redirect(url_for("pool.settings", pool_id=pool_id))


@bp.post("/<int:pool_id>/settings/limits")
@login_required
def limits(pool_id: int) -> Any:
    for tier in TIERS:
        set_claim_limit(
            db.session,
            _me(),
            pool_id,
            tier,
            max_held=request.form.get(f"max_held_{tier}"),
            daily_claims=request.form.get(f"daily_claims_{tier}"),
        )
    flash(_("Claim limits saved."))
    return redirect(url_for("pool.settings", pool_id=pool_id))


@bp.post("/<int:pool_id>/settings/rules")
@login_required
def rule(pool_id: int) -> Any:
    rule_id = request.form.get("rule_id", "")
    save_recycle_rule(
        db.session,
        _me(),
        pool_id,
        trigger=request.form.get("trigger", ""),
        days={tier: request.form.get(f"days_{tier}") for tier in TIERS},
        now=utcnow(),
        rule_id=int(rule_id) if rule_id.isdigit() else None,
        active=request.form.get("active") == "1",
        target_pool_id=request.form.get("target_pool_id"),
    )
    flash(_("Recycling rule saved."))
    return redirect(url_for("pool.settings", pool_id=pool_id))


@bp.post("/<int:pool_id>/settings/rules/<int:rule_id>/delete")
@login_required
def delete_rule(pool_id: int, rule_id: int) -> Any:
    delete_recycle_rule(db.session, _me(), pool_id, rule_id)
    flash(_("Recycling rule deleted."))
    return redirect(url_for("pool.settings", pool_id=pool_id))


@bp.app_template_filter("trigger_name")
def trigger_name(trigger: str) -> str:
    names = {
        "no_followup": _("No follow-up"),
        "no_opportunity": _("No opportunity"),
        "no_deal": _("No deal won"),
        "stage_unchanged": _("Deal stage unchanged"),
        "contract_ended": _("Contract ended"),
    }
    return names.get(trigger, trigger)
