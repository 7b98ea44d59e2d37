"""The stages of each pipeline with their configured win rate and `max_days`.

They come from the newest deployed version of the pipeline process (the `stage`, `win_rate` and
`max_days` properties of its stage tasks). Before anything is deployed the board's stage list is
used with the win rate last recorded in the stage history.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.sales.board import PIPELINE_STAGES
from crm.sales.models import StageChange
from engine.deploy import latest_definition
from engine.models import Deployment

_PROPERTY = "{http://spiffworkflow.org/bpmn/schema/1.0/core}property"
_BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


@dataclass(frozen=True)
class StageConfig:
    stage: str
    win_rate: int | None
    max_days: float | None


def pipeline_process_id(pipeline: str) -> str:
    return f"sales_pipeline_{pipeline}"


# Deployed versions never change, so their parsed stages are kept per definition id.
_PARSED: dict[int, list[StageConfig]] = {}


def _deployed_stages(session: Session, pipeline: str) -> list[StageConfig]:
    definition = latest_definition(session, pipeline_process_id(pipeline))
    if definition is None:
        return []
    if definition.id not in _PARSED:
        sources = session.scalar(
            select(Deployment.sources).where(Deployment.id == definition.deployment_id)
        )
        source = (sources or {}).get(definition.source_file)
        _PARSED[definition.id] = _parse_stages(source, pipeline) if source else []
    return _PARSED[definition.id]


def _parse_stages(source: str | bytes, pipeline: str) -> list[StageConfig]:
    root = etree.fromstring(source.encode() if isinstance(source, str) else source)
    process = root.find(f"{_BPMN}process[@id='{pipeline_process_id(pipeline)}']")
    found: list[StageConfig] = []
    for task in (process if process is not None else root).iter(f"{_BPMN}userTask"):
        props = {p.get("name"): p.get("value") for p in task.iter(_PROPERTY)}
        if not props.get("stage") or any(c.stage == props["stage"] for c in found):
            continue
        found.append(
            StageConfig(
                props["stage"] or "",
                _whole(props.get("win_rate")),
                _number(props.get("max_days")),
            )
        )
    return found


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _whole(text: str | None) -> int | None:
    number = _number(text)
    return int(number) if number is not None else None


def pipeline_stages(session: Session, pipeline: str) -> list[StageConfig]:
    """Return the pipeline's stages in order, with configured win rate and max days."""
    deployed = {c.stage: c for c in _deployed_stages(session, pipeline)}
    order = list(PIPELINE_STAGES.get(pipeline, ()))
    order += [s for s in deployed if s not in order]
    missing = [s for s in order if s not in deployed]
    # The newest recorded move into each missing stage, found backwards along the primary key.
    recorded: dict[str, int] = {}
    for stage in missing:
        rate = session.scalar(
            select(StageChange.win_rate)
            .where(StageChange.to_stage == stage)
            .order_by(StageChange.id.desc())
            .limit(1)
        )
        if rate is not None:
            recorded[stage] = rate
    return [deployed.get(s) or StageConfig(s, recorded.get(s), None) for s in order]
