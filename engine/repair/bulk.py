"""Run one repair on many instances, each in its own savepoint, with a per-instance report;
and say in advance what each instance would get."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine.actor import Actor
from engine.errors import EngineError, InvalidInput
from engine.instances import (
    resume_instance,
    suspend_instance,
    terminate_instance,
)
from engine.models import (
    ProcessInstance,
)
from engine.repair.common import StaleInstance, lock_for_repair, require_repairer
from engine.repair.fixes import edit_data_and_retry, reassign_open_tasks
from engine.repair.log import RepairLog, record_repair
from engine.repair.migration import check_migration, migrate_instance
from engine.repair.moving import move_token, tokens_of

MAX_BULK = 1000


@dataclass(frozen=True)
class BulkResult:
    """What happened to one instance: ok, refused (with the reason), conflict or error."""

    instance_id: int
    outcome: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "outcome": self.outcome, "message": self.message}


def _suspend(s: Session, a: Actor, i: int, now: datetime, p: Mapping[str, Any]) -> Any:
    return suspend_instance(s, a, i, now=now, reason=str(p.get("reason") or ""))


def _resume(s: Session, a: Actor, i: int, now: datetime, p: Mapping[str, Any]) -> Any:
    return resume_instance(s, a, i, now=now)


def _terminate(s: Session, a: Actor, i: int, now: datetime, p: Mapping[str, Any]) -> Any:
    return terminate_instance(s, a, i, now=now, reason=str(p.get("reason") or ""))


def _retry(s: Session, a: Actor, i: int, now: datetime, p: Mapping[str, Any]) -> Any:
    return edit_data_and_retry(
        s, a, i, dict(p.get("data") or {}), now=now, replace=bool(p.get("replace"))
    )


def _move_action(s: Session, a: Actor, i: int, now: datetime, p: Mapping[str, Any]) -> Any:
    return move_token(
        s, a, i, str(p["source"]), str(p["target"]), now=now, reason=str(p.get("reason") or "")
    )


def _migrate(s: Session, a: Actor, i: int, now: datetime, p: Mapping[str, Any]) -> Any:
    return migrate_instance(s, a, i, int(p["definition_id"]), now=now)


def _reassign(s: Session, a: Actor, i: int, now: datetime, p: Mapping[str, Any]) -> Any:
    return reassign_open_tasks(
        s,
        a,
        i,
        str(p["to"]),
        now=now,
        bpmn_id=p.get("bpmn_id") or None,
        reason=str(p.get("reason") or ""),
    )


BULK_ACTIONS: dict[str, Callable[[Session, Actor, int, datetime, Mapping[str, Any]], Any]] = {
    "suspend": _suspend,
    "resume": _resume,
    "terminate": _terminate,
    "retry": _retry,
    "reassign": _reassign,
    "move": _move_action,
    "migrate": _migrate,
}
# What each action needs in `params`.
REQUIRED_PARAMS = {"reassign": ("to",), "move": ("source", "target"), "migrate": ("definition_id",)}


def _check_bulk(actor: Actor, action: str, count: int, params: Mapping[str, Any]) -> None:
    require_repairer(actor)
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"unknown action '{action}'", {"action": ["choose an action"]})
    if count > MAX_BULK:
        raise InvalidInput(
            f"{count} instances selected, at most {MAX_BULK} at once",
            {"scope": [f"narrow the filter to at most {MAX_BULK} instances"]},
        )
    missing = [name for name in REQUIRED_PARAMS.get(action, ()) if not params.get(name)]
    if missing:
        raise InvalidInput(
            f"please fill in: {', '.join(missing)}", {m: ["is required"] for m in missing}
        )


def _classify(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, StaleInstance) or isinstance(exc.__cause__, StaleDataError):
        return "conflict", exc.message if isinstance(exc, EngineError) else str(exc)
    if isinstance(exc, EngineError):
        return "refused", exc.message
    return "error", f"{type(exc).__name__}: {exc}"


def run_bulk(
    session: Session,
    actor: Actor,
    action: str,
    targets: Mapping[int, int | None],
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
) -> list[BulkResult]:
    """Run one action on each instance in its own savepoint; report instance by instance.

    `targets` maps each instance id to the version the user confirmed (or None). A failure of
    one instance is rolled back alone and never affects another.
    """
    params = params or {}
    _check_bulk(actor, action, len(targets), params)
    run = BULK_ACTIONS[action]
    results = []
    for instance_id, expected in targets.items():
        try:
            with session.begin_nested():
                lock_for_repair(session, actor, instance_id, expected)
                outcome = run(session, actor, instance_id, now, params)
        except Exception as exc:  # each instance's own failure goes into the report
            results.append(BulkResult(instance_id, *_classify(exc)))
            continue
        incident = getattr(outcome, "incident", None)
        if incident is not None:
            message = f"failed again at '{incident.bpmn_id}': {incident.message}"
            results.append(BulkResult(instance_id, "error", message))
        else:
            results.append(BulkResult(instance_id, "ok"))
    return results


def run_bulk_and_record(
    session: Session,
    actor: Actor,
    action: str,
    targets: Mapping[int, int | None],
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
) -> RepairLog:
    """Run a bulk action and keep its per-instance report."""
    results = run_bulk(session, actor, action, targets, now=now, params=params)
    counts: dict[str, Any] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return record_repair(
        session,
        actor,
        f"bulk_{action}",
        params or {},
        {"items": [r.as_dict() for r in results]},
        counts,
        now=now,
    )


def preview_bulk(
    session: Session,
    actor: Actor,
    action: str,
    instance_ids: Iterable[int],
    params: Mapping[str, Any] | None = None,
) -> list[BulkResult]:
    """Tell, without changing anything, what the action would do to each instance."""
    require_repairer(actor)
    params = params or {}
    if action not in _RUNS_ON:
        raise InvalidInput(f"unknown action '{action}'", {"action": ["choose an action"]})
    found = []
    for instance_id in instance_ids:
        try:
            found.append(_expected_result(session, actor, action, instance_id, params))
        except EngineError as exc:  # e.g. a version of another process: refused, not an error
            found.append(BulkResult(instance_id, "refused", exc.message))
    return found


_RUNS_ON = {
    "suspend": ("running", "waiting"),
    "resume": ("suspended",),
    "retry": ("error",),
    "move": ("running", "waiting", "error"),
    "reassign": ("running", "waiting"),
    "terminate": ("running", "waiting", "suspended", "error"),
    "migrate": ("running", "waiting", "suspended", "error"),
}


def _expected_result(
    session: Session, actor: Actor, action: str, instance_id: int, params: Mapping[str, Any]
) -> BulkResult:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        return BulkResult(instance_id, "refused", f"process instance {instance_id} does not exist")
    if instance.status not in _RUNS_ON[action]:
        return BulkResult(instance_id, "refused", f"it is {instance.status}")
    if action == "migrate" and params.get("definition_id"):
        check = check_migration(session, actor, instance_id, int(params["definition_id"]))
        return BulkResult(
            instance_id, "ok" if check.compatible else "refused", "; ".join(check.blockers)
        )
    if action == "move" and params.get("source"):
        tokens = {t.element.bpmn_id: t for t in tokens_of(session, actor, instance_id)}
        token = tokens.get(str(params["source"]))
        if token is None:
            return BulkResult(instance_id, "refused", f"no token at '{params['source']}'")
        if all(t.bpmn_id != params.get("target") for t in token.targets):
            return BulkResult(
                instance_id, "refused", f"'{params.get('target')}' is not a valid target here"
            )
    return BulkResult(instance_id, "ok")


def run_action(
    session: Session,
    actor: Actor,
    action: str,
    instance_id: int,
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> Any:
    """Run one repair action on one instance, refusing if it changed since `expected_version`."""
    params = params or {}
    _check_bulk(actor, action, 1, params)
    lock_for_repair(session, actor, instance_id, expected_version)
    return BULK_ACTIONS[action](session, actor, instance_id, now, params)
