"""The stage editor's services: read a pipeline's stages, preview a change, save it as a version.

Stage keys are stable: a stage keeps its key (stored on opportunities and in the stage history)
when it is renamed or moved; a new stage gets a key made from its label; a removed stage's key is
simply no longer used by new versions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.designer.workspace import Workspace
from crm.directory.models import User
from crm.directory.services import visible_owner_ids
from crm.errors import fields_error, msg
from crm.sales.models import Opportunity
from crm.stage_design.models import PIPELINE
from crm.stage_design.pipeline_bpmn import build_pipeline_bpmn, foreign_elements
from crm.stage_design.pipeline_read import read_pipeline_bpmn
from crm.stage_design.services import (
    check_comment,
    collect_problems,
    deploy_design,
    deployed_source,
    record_change,
    require_design_editor,
)
from crm.stage_design.stages import PipelineSpec, StageSpec, check_stages, process_id_of
from engine.deploy import DeployResult, latest_definition

MAX_LISTED = 50


def pipeline_file(key: str) -> str:
    return f"{process_id_of(key)}.bpmn"


def load_pipeline(
    session: Session, user: User, key: str, *, files: Workspace
) -> tuple[PipelineSpec, int | None]:
    """Return the stages of the newest version of a pipeline, and that version's number."""
    require_design_editor(session, user, PIPELINE, key)
    source, version = deployed_source(session, process_id_of(key), pipeline_file(key), files)
    return read_pipeline_bpmn(source, key), version


def stage_changes(old: tuple[StageSpec, ...], new: tuple[StageSpec, ...]) -> list[dict[str, Any]]:
    """List what differs between two stage lists, by stable key, as {"kind": ..., ...} items."""
    before = {s.key: (i, s) for i, s in enumerate(old)}
    after = {s.key: (i, s) for i, s in enumerate(new)}
    changes: list[dict[str, Any]] = []
    for stage in old:
        if stage.key not in after:
            changes.append({"kind": "removed", "key": stage.key, "label": stage.label})
    for stage in new:
        if stage.key not in before:
            changes.append({"kind": "added", "key": stage.key, "label": stage.label})
            continue
        _, was = before[stage.key]
        if was.label != stage.label:
            changes.append(
                {"kind": "renamed", "key": stage.key, "label": stage.label, "old": was.label}
            )
        for name in ("win_rate", "max_days", "criteria", "guidance"):
            if getattr(was, name) != getattr(stage, name):
                changes.append(
                    {
                        "kind": name,
                        "key": stage.key,
                        "label": stage.label,
                        "old": _plain(getattr(was, name)),
                        "new": _plain(getattr(stage, name)),
                    }
                )
    kept_old = [s.key for s in old if s.key in after]
    kept_new = [s.key for s in new if s.key in before]
    if kept_old != kept_new:
        changes.append({"kind": "reordered", "order": [s.label for s in new]})
    return changes


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# Words for the stage properties a change names (`win_rate` -> "win rate").
_PROPERTY_NAMES = {
    "win_rate": msg("win rate"),
    "max_days": msg("max days"),
    "criteria": msg("criteria"),
}


def describe_change(change: dict[str, Any]) -> str:
    """Return one change as an English sentence (deploy comments and the history).

    The sentence is a `msg`: the history shows it in the reader's language.
    """
    kind, label = change["kind"], change.get("label", "")
    if kind == "added":
        return msg("added stage %(label)s", label=label)
    if kind == "removed":
        return msg("removed stage %(label)s", label=label)
    if kind == "renamed":
        return msg("renamed stage %(old)s to %(label)s", old=change["old"], label=label)
    if kind == "reordered":
        return msg("new order: %(order)s", order=" > ".join(change["order"]))
    if kind == "owner":
        return msg("owner: %(label)s", label=label)
    if kind == "guidance":
        return msg("%(label)s: new guidance", label=label)
    return msg(
        "%(label)s: %(property)s %(old)s -> %(new)s",
        label=label,
        property=_PROPERTY_NAMES.get(kind, kind.replace("_", " ")),
        old=change["old"],
        new=change["new"],
    )


@dataclass
class StageCount:
    key: str
    label: str
    count: int
    fate: str  # kept, renamed, removed, unknown (a key no current stage has)


@dataclass
class AffectedDeal:
    id: int
    name: str
    stage: str
    fate: str


@dataclass
class PipelinePreview:
    """What a save would do: the changes, the deals still running on the old stages."""

    version: int | None
    changes: list[dict[str, Any]]
    open_total: int
    by_stage: list[StageCount]
    affected: list[AffectedDeal] = field(default_factory=list)
    affected_total: int = 0
    bpmn: str = ""
    # Elements of the running version the generator does not make (added in the modeler).
    foreign: list[str] = field(default_factory=list)


def preview_pipeline(
    session: Session, user: User, key: str, stages: list[StageSpec], *, files: Workspace
) -> PipelinePreview:
    """Check a new stage list and tell how open opportunities of this pipeline are affected.

    Open deals keep running on the version they started with; new deals get the new stages.
    Deals in a removed or renamed stage are listed (those the user may see).
    :raises InvalidInput: naming the stage row and field of every problem.
    """
    current, version = load_pipeline(session, user, key, files=files)
    new = PipelineSpec(key, current.name, tuple(stages))
    bpmn = build_pipeline_bpmn(new).decode("utf-8")
    source, _ = deployed_source(session, process_id_of(key), pipeline_file(key), files)
    changes = stage_changes(current.stages, new.stages)
    fates = _fates(current.stages, new.stages)
    rows = session.execute(
        select(Opportunity.stage, func.count())
        .where(Opportunity.pipeline == key, Opportunity.status == "open")
        .group_by(Opportunity.stage)
    )
    counts: dict[str | None, int] = {stage: int(n) for stage, n in rows}
    labels = {s.key: s.label for s in current.stages}
    by_stage = [
        StageCount(s.key, s.label, int(counts.get(s.key, 0)), fates[s.key]) for s in current.stages
    ]
    by_stage += [
        StageCount(str(k or ""), str(k or ""), int(n), "unknown")
        for k, n in counts.items()
        if k not in labels
    ]
    touched = [k for k, fate in fates.items() if fate in ("removed", "renamed")]
    affected_total = sum(int(counts.get(k, 0)) for k in touched)
    affected: list[AffectedDeal] = []
    if touched:
        query = select(Opportunity).where(
            Opportunity.pipeline == key,
            Opportunity.status == "open",
            Opportunity.stage.in_(touched),
        )
        scope = visible_owner_ids(session, user)
        if scope is not None:
            query = query.where(Opportunity.owner_id.in_(scope))
        for deal in session.scalars(query.order_by(Opportunity.id).limit(MAX_LISTED)):
            stage = str(deal.stage)
            affected.append(AffectedDeal(deal.id, deal.name, labels[stage], fates[stage]))
    return PipelinePreview(
        version=version,
        changes=changes,
        open_total=sum(int(n) for n in counts.values()),
        by_stage=by_stage,
        affected=affected,
        affected_total=affected_total,
        bpmn=bpmn,
        foreign=foreign_elements(source, current),
    )


def _fates(old: tuple[StageSpec, ...], new: tuple[StageSpec, ...]) -> dict[str, str]:
    after = {s.key: s for s in new}
    fates = {}
    for stage in old:
        if stage.key not in after:
            fates[stage.key] = "removed"
        elif after[stage.key].label != stage.label:
            fates[stage.key] = "renamed"
        else:
            fates[stage.key] = "kept"
    return fates


@dataclass(frozen=True)
class SavedPipeline:
    version: int | None
    result: DeployResult
    changes: list[dict[str, Any]]


def save_pipeline(
    session: Session,
    user: User,
    key: str,
    stages: list[StageSpec],
    comment: str,
    *,
    files: Workspace,
    now: datetime,
) -> SavedPipeline:
    """Generate the pipeline's BPMN from the stages and deploy it as a new version.

    The deploy comment and the design change record say who changed what and why.
    :raises InvalidInput: bad stages, no comment, or nothing changed; nothing is deployed.
    :raises DeployRejected: the processes folder does not deploy; nothing is deployed.
    """
    current, _ = load_pipeline(session, user, key, files=files)
    reason = collect_problems(lambda: check_stages(stages), lambda: check_comment(comment))
    new = PipelineSpec(key, current.name, tuple(stages))
    changes = stage_changes(current.stages, new.stages)
    if not changes:
        raise fields_error(stages="nothing changed: the stages are the same as the newest version")
    summary = "; ".join(describe_change(c) for c in changes)
    result = deploy_design(
        session,
        user,
        pipeline_file(key),
        build_pipeline_bpmn(new),
        files=files,
        comment=f"Stage editor, pipeline {key}, by {user.username}: {summary}. Why: {reason}",
        now=now,
    )
    change = record_change(
        session,
        user,
        PIPELINE,
        key,
        result,
        process_id_of(key),
        comment=reason,
        changes=changes,
        now=now,
    )
    return SavedPipeline(change.process_version, result, changes)


_STAGES_CACHE: dict[int, tuple[StageSpec, ...]] = {}


def pipeline_stages(session: Session, key: str) -> tuple[StageSpec, ...]:
    """Return the stages of the newest deployed version of a pipeline (empty if not deployed).

    For boards, stage labels and exit checks outside a process; no permission check. Parsed
    once per deployed version.
    """
    definition = latest_definition(session, process_id_of(key))
    if definition is None:
        return ()
    cached = _STAGES_CACHE.get(definition.id)
    if cached is None:
        source = (definition.deployment.sources or {}).get(definition.source_file)
        if not isinstance(source, str):
            return ()
        cached = read_pipeline_bpmn(source.encode("utf-8"), key).stages
        if len(_STAGES_CACHE) > 100:
            _STAGES_CACHE.clear()
        _STAGES_CACHE[definition.id] = cached
    return cached
