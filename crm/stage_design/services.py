"""Who may edit which design, the owners admins set, the change history, and the deploy step.

"Own" means: the design's owning team is a team the user manages (Team.manager_id), or lies
below one (a supervisor also leads their own team). Admins may edit every design. A design with
no owner is admin-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.designer.workspace import Workspace, write_file
from crm.directory.models import Team, User
from crm.directory.services import team_subtree
from crm.errors import Forbidden, InvalidInput, NotFound, fields_error, msg
from crm.sales.models import PIPELINES
from crm.stage_design.models import DESIGN_KINDS, PIPELINE, DesignChange, DesignOwner
from engine.deploy import (
    DeployResult,
    deploy_files,
    latest_definition,
)

DESIGNER_ROLES = frozenset({"manager", "supervisor", "director"})
# Approval tables the editor knows: decision id -> (DMN file, the process that runs it).
APPROVAL_TABLES = {"quote_approval_chain": ("quote_approval_chain.dmn", "quote_approval")}
MAX_COMMENT = 500


@dataclass(frozen=True)
class DesignEntry:
    """A pipeline or approval table as the designer's index lists it."""

    kind: str
    key: str
    owner_team: str | None
    editable: bool


def design_keys(kind: str) -> tuple[str, ...]:
    """Return the keys of every design of a kind."""
    return tuple(PIPELINES) if kind == PIPELINE else tuple(APPROVAL_TABLES)


def _kind_name(kind: str) -> str:
    """Return how messages name a kind of design (`approval_table` -> "approval table")."""
    if kind == PIPELINE:
        return msg("pipeline")
    return msg("approval table") if kind in DESIGN_KINDS else kind


def _check_design(kind: str, key: str) -> None:
    if kind not in DESIGN_KINDS or key not in design_keys(kind):
        raise NotFound(msg("%(kind)s '%(key)s' does not exist", kind=_kind_name(kind), key=key))


def _led_teams(session: Session, user: User) -> set[int]:
    led = set(session.scalars(select(Team.id).where(Team.manager_id == user.id)))
    if "supervisor" in user.roles and user.team_id:
        led.add(user.team_id)
    return team_subtree(session, led) if led else set()


def owner_of(session: Session, kind: str, key: str) -> DesignOwner | None:
    """Return the owner row of a design, if an admin set one."""
    return session.scalar(
        select(DesignOwner).where(DesignOwner.kind == kind, DesignOwner.key == key)
    )


def can_edit_design(session: Session, user: User, kind: str, key: str) -> bool:
    """Tell whether the user may change this pipeline's stages or this approval table."""
    if "admin" in user.roles:
        return True
    if not user.roles & DESIGNER_ROLES:
        return False
    owner = owner_of(session, kind, key)
    return owner is not None and owner.team_id in _led_teams(session, user)


def require_design_editor(session: Session, user: User, kind: str, key: str) -> None:
    """Refuse users who may not edit the design (unknown designs are not found).

    :raises Forbidden: when the user is not an admin nor a manager over the owning team.
    """
    _check_design(kind, key)
    if not can_edit_design(session, user, kind, key):
        raise Forbidden(
            msg(
                "only admins and the managers owning %(kind)s '%(key)s' may edit it",
                kind=_kind_name(kind),
                key=key,
            )
        )


def may_use_designer(session: Session, user: User) -> bool:
    """Tell whether the user may edit at least one design (for the navigation link)."""
    if "admin" in user.roles:
        return any(design_keys(kind) for kind in DESIGN_KINDS)
    if not user.roles & DESIGNER_ROLES:
        return False  # reps and the like: no query on every page
    led = _led_teams(session, user)
    if not led:
        return False
    owned = session.execute(
        select(DesignOwner.kind, DesignOwner.key).where(DesignOwner.team_id.in_(sorted(led)))
    )
    return any(kind in DESIGN_KINDS and key in design_keys(kind) for kind, key in owned)


def list_designs(session: Session, user: User) -> list[DesignEntry]:
    """Return every pipeline and approval table with its owner and whether the user may edit."""
    owners = {(o.kind, o.key): o.team_id for o in session.scalars(select(DesignOwner))}
    names = {row.id: row.name for row in session.execute(select(Team.id, Team.name))}
    led = _led_teams(session, user) if user.roles & DESIGNER_ROLES else set()
    admin = "admin" in user.roles
    entries = []
    for kind in DESIGN_KINDS:
        for key in design_keys(kind):
            team_id = owners.get((kind, key))
            editable = admin or (team_id is not None and team_id in led)
            entries.append(
                DesignEntry(kind, key, names.get(team_id) if team_id else None, editable)
            )
    return entries


def set_design_owner(
    session: Session, user: User, kind: str, key: str, team_id: int | None, *, now: datetime
) -> DesignOwner | None:
    """Give a design to a team (None: no owner, admins only); admins only."""
    if "admin" not in user.roles:
        raise Forbidden("only admins set who owns a pipeline or approval table")
    _check_design(kind, key)
    row = owner_of(session, kind, key)
    team = session.get(Team, team_id) if team_id is not None else None
    if team_id is not None and team is None:
        raise fields_error(team_id=msg("team %(id)s does not exist", id=team_id))
    owner_name = team.name if team is not None else "none (admins only)"
    session.add(
        DesignChange(
            kind=kind,
            key=key,
            changed_by=user.username,
            changed_at=now,
            comment=f"owner set to {owner_name}",
            summary={"changes": [{"kind": "owner", "row": owner_name, "label": owner_name}]},
        )
    )
    if team is None:
        if row is not None:
            session.delete(row)
        session.flush()
        return None
    if row is None:
        row = DesignOwner(kind=kind, key=key, team_id=team.id, set_by=user.username, set_at=now)
        session.add(row)
    row.team_id, row.set_by, row.set_at = team.id, user.username, now
    session.flush()
    return row


def design_history(
    session: Session, user: User, kind: str, key: str, limit: int = 20
) -> list[DesignChange]:
    """Return the latest saved changes of a design, newest first (editors only)."""
    require_design_editor(session, user, kind, key)
    return list(
        session.scalars(
            select(DesignChange)
            .where(DesignChange.kind == kind, DesignChange.key == key)
            .order_by(DesignChange.changed_at.desc(), DesignChange.id.desc())
            .limit(limit)
        )
    )


def check_comment(comment: str) -> str:
    """Return the trimmed reason for a change; one is required for the audit trail."""
    text = comment.strip()
    if not text:
        raise fields_error(comment="say why you change it (kept with the new version)")
    if len(text) > MAX_COMMENT:
        raise fields_error(comment=msg("at most %(max)s characters", max=MAX_COMMENT))
    return text


def collect_problems(check: Callable[[], None], comment: Callable[[], str]) -> str:
    """Run the content check and the comment check; raise the problems of both together.

    :raises InvalidInput: with the fields of both checks.
    """
    problems: dict[str, list[str]] = {}
    reason = ""
    try:
        check()
    except InvalidInput as exc:
        problems.update(exc.fields)
    try:
        reason = comment()
    except InvalidInput as exc:
        problems.update(exc.fields)
    if problems:
        raise InvalidInput(
            msg("please correct: %(fields)s", fields=", ".join(sorted(problems))), problems
        )
    return reason


def deployed_source(
    session: Session, process_id: str, filename: str, files: Workspace
) -> tuple[bytes, int | None]:
    """Return a file as the newest version of `process_id` was deployed with it, and that version.

    Falls back to the file in the processes folder when the process was never deployed.
    """
    definition = latest_definition(session, process_id)
    if definition is not None:
        source = (definition.deployment.sources or {}).get(filename)
        if isinstance(source, str):
            return source.encode("utf-8"), definition.version
    path = files.processes_dir / filename
    if not path.is_file():
        raise NotFound(
            msg("%(file)s is neither deployed nor in the processes folder", file=filename)
        )
    return path.read_bytes(), definition.version if definition is not None else None


def deploy_design(
    session: Session,
    user: User,
    filename: str,
    content: bytes,
    *,
    files: Workspace,
    comment: str,
    now: datetime,
) -> DeployResult:
    """Deploy the processes folder with `filename` replaced, then write the file there.

    The whole folder goes through the engine's usual checks, so processes that call the changed
    one (lead_to_cash calls the pipelines) get a new version too.
    :raises DeployRejected: with every problem; nothing is stored or written.
    """
    result = deploy_files(
        session,
        user.username,
        {**files.working_set(), filename: content},
        load_form=files.form_loader(),
        now=now,
        comment=comment,
    )
    write_file(files.processes_dir / filename, content)
    return result


def record_change(
    session: Session,
    user: User,
    kind: str,
    key: str,
    result: DeployResult,
    process_id: str,
    *,
    comment: str,
    changes: list[dict[str, Any]],
    now: datetime,
) -> DesignChange:
    """Keep the editor's own record of a saved change next to the engine's deployment."""
    version = next((p.version for p in result.processes if p.process_id == process_id), None)
    change = DesignChange(
        kind=kind,
        key=key,
        deployment_id=result.deployment_id,
        process_version=version,
        changed_by=user.username,
        changed_at=now,
        comment=comment,
        summary={"changes": changes, "versions": [p.__dict__ for p in result.processes if p.new]},
    )
    session.add(change)
    session.flush()
    return change
