"""Diagram interchange (BPMNDI) for a generated pipeline: stages laid out left to right.

Each stage takes a column block: entry gateway, stage task (stale timer below it), decision
gateway, exit check, "exit criteria met?" gateway; the missing-criteria loop runs above the
row, the back flows below it and the lost flows along the top to the lost ending on the right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

if TYPE_CHECKING:
    from crm.stage_design.stages import PipelineSpec

DI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
OMG_DI = "http://www.omg.org/spec/DD/20100524/DI"
ROW = 400  # y of the main row's centre line
BLOCK = 610  # width of one stage's block
FIRST = 275  # x of the first entry gateway
LOOP_Y, BACK_Y, LOST_Y = 270, 630, 110

Box = tuple[int, int, int, int]


def _shapes(pipeline: PipelineSpec) -> dict[str, Box]:
    shapes: dict[str, Box] = {"start": (192, ROW - 18, 36, 36)}
    for index, stage in enumerate(pipeline.stages):
        x, k = FIRST + index * BLOCK, stage.key
        shapes[f"enter_{k}"] = (x, ROW - 25, 50, 50)
        shapes[k] = (x + 85, ROW - 40, 100, 80)
        shapes[f"decide_{k}"] = (x + 240, ROW - 25, 50, 50)
        shapes[f"check_exit_{k}"] = (x + 365, ROW - 40, 100, 80)
        shapes[f"exit_ok_{k}"] = (x + 520, ROW - 25, 50, 50)
        shapes[f"note_problems_{k}"] = (x + 365, LOOP_Y - 40, 100, 80)
        shapes[f"stale_{k}"] = (x + 117, ROW + 22, 36, 36)
        shapes[f"notify_stale_{k}"] = (x + 85, ROW + 100, 100, 80)
        shapes[f"stale_reported_{k}"] = (x + 222, ROW + 122, 36, 36)
    end = FIRST + len(pipeline.stages) * BLOCK
    for name, dx, box in (
        ("close_won", 0, (100, 80)),
        ("mark_won", 140, (100, 80)),
        ("end_won", 292, (36, 36)),
        ("merge_lost", 380, (50, 50)),
        ("close_lost", 470, (100, 80)),
        ("mark_lost", 610, (100, 80)),
        ("end_lost", 762, (36, 36)),
    ):
        shapes[name] = (end + dx, ROW - box[1] // 2, box[0], box[1])
    return shapes


def _centre_x(box: Box) -> int:
    return box[0] + box[2] // 2


def _waypoints(
    flow_id: str, source: str, target: str, shapes: dict[str, Box]
) -> list[tuple[int, int]]:
    s, t = shapes[source], shapes[target]
    if source.startswith("exit_ok_") and target.startswith("note_problems_"):
        return [(_centre_x(s), s[1]), (_centre_x(s), LOOP_Y), (t[0] + t[2], LOOP_Y)]
    if source.startswith("note_problems_"):
        return [(s[0], LOOP_Y), (_centre_x(t), LOOP_Y), (_centre_x(t), t[1])]
    if source.startswith("stale_") and target.startswith("notify_stale_"):
        return [(_centre_x(s), s[1] + s[3]), (_centre_x(s), t[1])]
    if flow_id.startswith("flow_lost_at_"):
        return [
            (_centre_x(s), s[1]),
            (_centre_x(s), LOST_Y),
            (_centre_x(t), LOST_Y),
            (_centre_x(t), t[1]),
        ]
    if source.startswith("decide_") and target.startswith("enter_"):  # back
        return [
            (_centre_x(s), s[1] + s[3]),
            (_centre_x(s), BACK_Y),
            (_centre_x(t), BACK_Y),
            (_centre_x(t), t[1] + t[3]),
        ]
    return [(s[0] + s[2], s[1] + s[3] // 2), (t[0], t[1] + t[3] // 2)]


def _bounds(parent: etree._Element, box: Box) -> None:
    etree.SubElement(
        parent,
        f"{{{DC}}}Bounds",
        x=str(box[0]),
        y=str(box[1]),
        width=str(box[2]),
        height=str(box[3]),
    )


def add_diagram(
    root: etree._Element, pipeline: PipelineSpec, flows: list[tuple[str, str, str]]
) -> None:
    """Append the BPMNDiagram (pool, lane, shapes and edges) to a generated definitions element."""
    pid = pipeline.process_id
    shapes = _shapes(pipeline)
    timers = {f"stale_{stage.key}" for stage in pipeline.stages}
    right = max(x + w for x, _, w, _ in shapes.values()) + 60
    diagram = etree.SubElement(root, f"{{{DI}}}BPMNDiagram", id=f"BPMNDiagram_{pid}")
    plane = etree.SubElement(
        diagram, f"{{{DI}}}BPMNPlane", id=f"BPMNPlane_{pid}", bpmnElement=f"Collaboration_{pid}"
    )
    for element, box in (
        (f"Participant_{pid}", (120, 60, right - 120, 640)),
        ("Lane_rep", (150, 60, right - 150, 640)),
    ):
        shape = etree.SubElement(
            plane,
            f"{{{DI}}}BPMNShape",
            id=f"{element}_di",
            bpmnElement=element,
            isHorizontal="true",
        )
        _bounds(shape, box)
    for element, box in shapes.items():
        shape = etree.SubElement(
            plane, f"{{{DI}}}BPMNShape", id=f"{element}_di", bpmnElement=element
        )
        if box[2] == 50:
            shape.set("isMarkerVisible", "true")
        _bounds(shape, box)
        if element in timers:
            # The timer's name goes left of it, clear of the report task below.
            label = etree.SubElement(shape, f"{{{DI}}}BPMNLabel")
            _bounds(label, (box[0] - 92, box[1] + 4, 88, 28))
    for flow_id, source, target in flows:
        edge = etree.SubElement(plane, f"{{{DI}}}BPMNEdge", id=f"{flow_id}_di", bpmnElement=flow_id)
        for x, y in _waypoints(flow_id, source, target, shapes):
            etree.SubElement(edge, f"{{{OMG_DI}}}waypoint", x=str(x), y=str(y))
