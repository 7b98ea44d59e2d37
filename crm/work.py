"""Human tasks as CRM users see them: a rep works their own, a manager also their team's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.directory.models import User
from crm.directory.services import actor_for, managed_user_ids, visible_owner_ids
from crm.errors import Forbidden, NotFound, msg
from crm.lanes import owner_of_subject
from engine.actor import Actor
from engine.models import HumanTask, ProcessInstance
from engine.runtime import ChangeOutcome
from engine.tasks import (
    claim_task,
    complete_locked_task,
    lock_task,
    may_work_on,
    reassign_task,
    unclaim_task,
)


def _holder(session: Session, task: HumanTask) -> User | None:
    username = task.assignee or task.candidate_user
    if username is None:
        return None
    return session.scalar(select(User).where(User.username == username))


def _manages_holder(session: Session, user: User, task: HumanTask) -> bool:
    if not user.roles & {"manager", "supervisor", "director"}:
        return False
    holder = _holder(session, task)
    scope = visible_owner_ids(session, user)
    return holder is not None and (scope is None or holder.id in scope)


def get_task_as(session: Session, user: User, task_id: int) -> HumanTask:
    """Return a task the user may see: theirs, offered, their team's, or on their records."""
    task = session.get(HumanTask, task_id)
    if task is None:
        raise NotFound(msg("task %(id)s does not exist", id=task_id))
    if may_work_on(actor_for(user), task) or _manages_holder(session, user, task):
        return task
    owner = owner_of_subject(session, task.subject_type, task.subject_id)
    scope = visible_owner_ids(session, user)
    if owner is not None and (scope is None or owner.id in scope):
        return task
    raise NotFound(msg("task %(id)s does not exist", id=task_id))


def _acting_actor(session: Session, user: User, task: HumanTask) -> Actor:
    """Return the actor to act as: the user, or (for their manager) the task's holder's stand-in."""
    actor = actor_for(user)
    if may_work_on(actor, task):
        return actor
    if _manages_holder(session, user, task):
        # A manager completing a team member's task acts with the right to do so, as themself.
        return Actor(user.username, actor.roles | {"ops"}, actor.teams)
    raise Forbidden(msg("task '%(title)s' is not yours", title=task.title))


@dataclass(frozen=True)
class LockedTask:
    """A task the user may see and its instance, read under the instance's row lock."""

    task: HumanTask
    instance: ProcessInstance


def lock_task_as(session: Session, user: User, task_id: int) -> LockedTask:
    """Read a task the user may see (as `get_task_as`) under its instance's row lock.

    For a form post that may complete the task: `complete_task_as(..., locked=...)` then works
    on these copies instead of reading the task again.
    """
    _, instance = lock_task(session, task_id)
    return LockedTask(get_task_as(session, user, task_id), instance)


def complete_task_as(
    session: Session,
    user: User,
    task_id: int,
    data: dict[str, Any],
    *,
    now: datetime,
    locked: LockedTask | None = None,
) -> ChangeOutcome:
    """Complete a task as a CRM user (reps their own; managers also their team's).

    `locked`: what `lock_task_as` returned for this task in this transaction.
    """
    # Lock first: the permission check then reads the locked copy instead of a second one.
    if locked is None or locked.task.id != task_id:
        locked = lock_task_as(session, user, task_id)
    actor = _acting_actor(session, user, locked.task)
    return complete_locked_task(session, actor, locked.task, locked.instance, data, now=now)


def claim_task_as(session: Session, user: User, task_id: int, *, now: datetime) -> HumanTask:
    get_task_as(session, user, task_id)
    return claim_task(session, actor_for(user), task_id, now=now)


def release_task_as(session: Session, user: User, task_id: int, *, now: datetime) -> HumanTask:
    task = get_task_as(session, user, task_id)
    return unclaim_task(session, _acting_actor(session, user, task), task_id, now=now)


def reassign_task_as(
    session: Session, user: User, task_id: int, to: User, *, now: datetime, reason: str = ""
) -> HumanTask:
    """Give a task to someone else: a manager within their team, ops and admins anywhere."""
    task = get_task_as(session, user, task_id)
    actor = actor_for(user)
    if not actor.can_repair:
        if not _manages_holder(session, user, task) and task.assignee is not None:
            raise Forbidden(msg("task '%(title)s' is not in your team", title=task.title))
        if to.id not in managed_user_ids(session, user):
            raise Forbidden(msg("%(username)s is not in your team", username=to.username))
        actor = Actor(user.username, actor.roles | {"ops"}, actor.teams)
    return reassign_task(session, actor, task_id, to.username, now=now, reason=reason)
