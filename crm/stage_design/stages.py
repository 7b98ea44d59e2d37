"""The stage list a manager edits: value objects, exit criteria and their checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from crm.errors import InvalidInput, msg
from crm.sales.services import EXIT_CHECK_TEXT, EXIT_CRITERIA

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Element ids the generated process uses besides the per-stage ones; a stage key may not take them.
RESERVED_KEYS = frozenset(
    {
        "start",
        "merge_lost",
        "close_won",
        "mark_won",
        "end_won",
        "close_lost",
        "mark_lost",
        "end_lost",
        "won",
        "lost",
        "lane_rep",
    }
)
MAX_STAGES = 20
MAX_LABEL = 80
MAX_GUIDANCE = 1000
# Labels and guidance are put into the task instructions, which are a template: no braces.
_TEMPLATE_MARKS = re.compile(r"[{}]")
_Report = Callable[[int | None, str, str], None]


@dataclass(frozen=True)
class StageSpec:
    """One stage: its stable key, the label people see, win rate, stale limit and exit criteria."""

    key: str
    label: str
    win_rate: int
    max_days: int
    criteria: tuple[str, ...] = ()
    guidance: str = ""


@dataclass(frozen=True)
class PipelineSpec:
    """A pipeline process: its key (`new_business`), display name and ordered stages."""

    key: str
    name: str
    stages: tuple[StageSpec, ...] = field(default_factory=tuple)

    @property
    def process_id(self) -> str:
        return process_id_of(self.key)


def process_id_of(pipeline_key: str) -> str:
    """Return the BPMN process id of a pipeline key (`renewal` -> `sales_pipeline_renewal`)."""
    return f"sales_pipeline_{pipeline_key}"


def default_criteria(stage_key: str) -> tuple[str, ...]:
    """Return the criteria the CRM checks for a stage whose process does not list them."""
    return tuple(EXIT_CRITERIA.get(stage_key, ()))


def criteria_choices() -> dict[str, str]:
    """Return every exit criterion the CRM can check, with the sentence it reports when missing."""
    return dict(EXIT_CHECK_TEXT)


def key_from_label(label: str, taken: set[str]) -> str:
    """Make a new, unused stage key from a label (`Technical review` -> `technical_review`)."""
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    if not base or not base[0].isalpha():
        base = f"stage_{base}" if base else "stage"
    base = base[:34]
    if base in RESERVED_KEYS:
        base = f"stage_{base}"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def check_stages(stages: list[StageSpec]) -> None:
    """Refuse a stage list that cannot become a pipeline, naming each row and field.

    Field names are `stages-<row>-<field>` with rows counted from 1, as the editor shows them.
    :raises InvalidInput: with every problem found.
    """
    problems: dict[str, list[str]] = {}

    def add(row: int | None, name: str, message: str) -> None:
        problems.setdefault(f"stages-{row}-{name}" if row else name, []).append(message)

    if not stages:
        add(None, "stages", msg("a pipeline needs at least one stage"))
    if len(stages) > MAX_STAGES:
        add(None, "stages", msg("a pipeline has at most %(max)s stages", max=MAX_STAGES))
    known = criteria_choices()
    seen_keys: dict[str, int] = {}
    seen_labels: dict[str, int] = {}
    for row, stage in enumerate(stages, start=1):
        _check_key(stage.key, row, seen_keys, add)
        _check_label(stage.label.strip(), row, seen_labels, add)
        _check_values(stage, row, known, add)
    if problems:
        raise InvalidInput(
            msg("please correct: %(fields)s", fields=", ".join(sorted(problems))), problems
        )


def _check_key(key: str, row: int, seen: dict[str, int], report: _Report) -> None:
    if not KEY_PATTERN.match(key):
        report(
            row,
            "key",
            msg(
                "stage %(row)s: key '%(key)s' must be lower-case letters, digits and _ "
                "(at most 40, starting with a letter)",
                row=row,
                key=key,
            ),
        )
    elif key in RESERVED_KEYS:
        report(row, "key", msg("stage %(row)s: key '%(key)s' is reserved", row=row, key=key))
    elif key in seen:
        message = msg(
            "stage %(row)s: key '%(key)s' is already used by stage %(other)s",
            row=row,
            key=key,
            other=seen[key],
        )
        report(row, "key", message)
    else:
        seen[key] = row


def _check_label(label: str, row: int, seen: dict[str, int], report: _Report) -> None:
    if not label:
        report(row, "label", msg("stage %(row)s: the name is required", row=row))
    elif len(label) > MAX_LABEL:
        message = msg(
            "stage %(row)s: the name is longer than %(max)s characters", row=row, max=MAX_LABEL
        )
        report(row, "label", message)
    elif _TEMPLATE_MARKS.search(label):
        report(row, "label", msg("stage %(row)s: the name may not contain { or }", row=row))
    elif label.casefold() in seen:
        other = seen[label.casefold()]
        message = msg(
            "stage %(row)s: '%(label)s' is already the name of stage %(other)s",
            row=row,
            label=label,
            other=other,
        )
        report(row, "label", message)
    else:
        seen[label.casefold()] = row


def _check_values(stage: StageSpec, row: int, known: dict[str, str], report: _Report) -> None:
    if not 0 <= stage.win_rate <= 100:
        report(row, "win_rate", msg("stage %(row)s: the win rate must be from 0 to 100", row=row))
    if not 1 <= stage.max_days <= 365:
        report(row, "max_days", msg("stage %(row)s: max days must be from 1 to 365", row=row))
    for code in stage.criteria:
        if code not in known:
            message = msg("stage %(row)s: unknown exit criterion '%(code)s'", row=row, code=code)
            report(row, "criteria", message)
    if len(stage.guidance) > MAX_GUIDANCE:
        message = msg(
            "stage %(row)s: the guidance is longer than %(max)s characters",
            row=row,
            max=MAX_GUIDANCE,
        )
        report(row, "guidance", message)
    elif _TEMPLATE_MARKS.search(stage.guidance):
        report(row, "guidance", msg("stage %(row)s: the guidance may not contain { or }", row=row))


def assign_new_keys(stages: list[StageSpec], existing: set[str]) -> list[StageSpec]:
    """Give stages without a key (just added in the editor) one made from their label.

    Keys already used by the list or by the current version (`existing`) are not reused.
    """
    taken = set(existing) | {s.key for s in stages if s.key}
    result = []
    for stage in stages:
        if not stage.key:
            key = key_from_label(stage.label or "stage", taken)
            taken.add(key)
            stage = StageSpec(
                key, stage.label, stage.win_rate, stage.max_days, stage.criteria, stage.guidance
            )
        result.append(stage)
    return result
