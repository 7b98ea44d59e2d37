"""Inbox actions: urge the holder of a task, and claim, reassign or complete tasks in bulk."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.directory.models import Notification, User
from crm.directory.services import (
    ALL_RECORDS_ROLES,
    TEAM_ROLES,
    actor_for,
    managed_user_ids,
    notify,
)
from crm.errors import Conflict, EngineError, Forbidden, InvalidInput, NotFound
from crm.inbox.taskpage import may_manage_tasks
from crm.work import claim_task_as, complete_task_as, get_task_as, reassign_task_as
from engine.models import HumanTask, InstanceEvent
from engine.runtime import log_event

URGE_INTERVAL = timedelta(hours=1)
BULK_LIMIT = 200


class UrgeRefused(Conflict):
    """An urge that is not sent; `reason` is "closed", "nobody", "yourself" or "recently"."""

    def __init__(self, message: str, reason: str, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.reason, self.retry_at = reason, retry_at


_URGE_TEXT = {
    "en": "{who} urges you to finish the task “{title}”.",
    "zh_CN": "{who} 催办：请尽快处理任务「{title}」。",
}


def urge_task(
    session: Session, user: User, task_id: int, *, now: datetime, link: str | None = None
) -> Notification:
    """Remind the holder of a task to get on with it; at most once an hour per task and user."""
    task = get_task_as(session, user, task_id)
    if task.status != "open":
        raise UrgeRefused(f"task '{task.title}' was already {task.status}", "closed")
    if task.assignee is None:
        raise UrgeRefused(f"nobody holds task '{task.title}' yet", "nobody")
    if task.assignee == user.username:
        raise UrgeRefused(f"you hold task '{task.title}' yourself", "yourself")
    holder = session.scalar(select(User).where(User.username == task.assignee))
    if holder is None:
        raise NotFound(f"no user named '{task.assignee}'")
    # Lock the task row so that two urges at the same moment cannot both pass the check.
    session.execute(select(HumanTask.id).where(HumanTask.id == task.id).with_for_update())
    last = session.scalar(
        select(func.max(InstanceEvent.at)).where(
            InstanceEvent.instance_id == task.instance_id,
            InstanceEvent.kind == "task_urged",
            InstanceEvent.task_id == task.task_id,
            InstanceEvent.actor == user.username,
        )
    )
    if last is not None and now - last < URGE_INTERVAL:
        raise UrgeRefused(
            f"you urged {holder.username} less than an hour ago",
            "recently",
            retry_at=last + URGE_INTERVAL,
        )
    log_event(
        session,
        task.instance_id,
        now,
        "task_urged",
        user.username,
        bpmn_id=task.bpmn_id,
        task_id=task.task_id,
        detail={"holder": holder.username},
    )
    text = _URGE_TEXT.get(holder.locale, _URGE_TEXT["en"])
    note = notify(
        session,
        holder.id,
        "task_urge",
        text.format(who=user.display_name, title=task.title),
        now=now,
        link=link,
    )
    session.flush()
    return note


@dataclass(frozen=True)
class BulkResult:
    """What happened to one task of a bulk action; `error` names the kind of refusal."""

    task_id: int
    title: str
    ok: bool
    error: str | None = None  # "not_found", "forbidden", "conflict" or "invalid"
    message: str = ""
    fields: dict[str, list[str]] = field(default_factory=dict)


_ERROR_KINDS = ((NotFound, "not_found"), (Forbidden, "forbidden"), (InvalidInput, "invalid"))


def _each_task(
    session: Session, user: User, task_ids: Iterable[int], act: Callable[[int], object]
) -> list[BulkResult]:
    """Apply `act` to every task in its own savepoint: a refusal undoes only that task."""
    ids = list(dict.fromkeys(task_ids))
    if len(ids) > BULK_LIMIT:
        raise InvalidInput(f"choose at most {BULK_LIMIT} tasks at once")
    results = []
    for task_id in ids:
        title = f"#{task_id}"
        try:
            title = get_task_as(session, user, task_id).title
            with session.begin_nested():
                act(task_id)
        except EngineError as exc:
            kind = next((k for cls, k in _ERROR_KINDS if isinstance(exc, cls)), "conflict")
            fields = getattr(exc, "fields", {}) or {}
            results.append(BulkResult(task_id, title, False, kind, exc.message, fields))
        else:
            results.append(BulkResult(task_id, title, True))
    return results


def _require_manager(user: User, what: str) -> None:
    if not may_manage_tasks(user):
        raise Forbidden(f"only managers may {what}")


def bulk_claim(
    session: Session, user: User, task_ids: Iterable[int], *, now: datetime
) -> list[BulkResult]:
    """Claim each task for the user; report task by task."""
    return _each_task(session, user, task_ids, lambda i: claim_task_as(session, user, i, now=now))


def reassign_choices(session: Session, user: User) -> list[User]:
    """Return whom the user may give tasks to: their team, or anyone for ops and admins."""
    query = select(User).where(User.active.is_(True))
    if not actor_for(user).can_repair:
        query = query.where(User.id.in_(sorted(managed_user_ids(session, user))))
    return list(session.scalars(query.order_by(User.display_name).limit(500)))


@dataclass(frozen=True)
class PersonChoice:
    id: int
    display_name: str


def reassign_names(
    session: Session, user: User, *, visible: set[int] | None = None
) -> list[PersonChoice]:
    """Return id and name of whom the user may give tasks to, as `reassign_choices` does.

    `visible` is the user's `visible_owner_ids` when the caller has it: for supervisors and
    managers it is the team they manage, which then is not looked up again.
    """
    query = select(User.id, User.display_name).where(User.active.is_(True))
    if not actor_for(user).can_repair:
        roles = user.roles
        if visible is not None and roles & TEAM_ROLES and not roles & ALL_RECORDS_ROLES:
            members = visible
        else:
            members = managed_user_ids(session, user)
        query = query.where(User.id.in_(sorted(members)))
    rows = session.execute(query.order_by(User.display_name).limit(500))
    return [PersonChoice(user_id, name) for user_id, name in rows]


def bulk_reassign(
    session: Session,
    user: User,
    task_ids: Iterable[int],
    to_user_id: int,
    *,
    now: datetime,
    reason: str = "",
) -> list[BulkResult]:
    """Give each task to one member of the manager's team; report task by task."""
    _require_manager(user, "reassign tasks")
    to = session.get(User, to_user_id)
    if to is None or not to.active or to not in reassign_choices(session, user):
        raise Forbidden("you may only give tasks to a member of your team")
    return _each_task(
        session,
        user,
        task_ids,
        lambda i: reassign_task_as(session, user, i, to, now=now, reason=reason),
    )


def bulk_complete(
    session: Session, user: User, task_ids: Iterable[int], data: dict[str, Any], *, now: datetime
) -> list[BulkResult]:
    """Complete each task with the same answer, checked against each task's own form."""
    _require_manager(user, "complete tasks in bulk")
    return _each_task(
        session,
        user,
        task_ids,
        lambda i: complete_task_as(session, user, i, dict(data), now=now),
    )
