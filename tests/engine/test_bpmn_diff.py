"""The element diff of two known versions of a small follow-up process (tests/engine/bpmn/diff/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.bpmn_diff import diff_bpmn
from engine.xmlsafe import UnsafeXml

DIFF = Path(__file__).parent / "bpmn" / "diff"
V1 = (DIFF / "v1.bpmn").read_bytes()
V2 = (DIFF / "v2.bpmn").read_bytes()


def _changes(diff):
    return {e.element_id: {c.aspect: (c.before, c.after) for c in e.changes} for e in diff.changed}


def test_bpmn_diff_lists_exactly_the_changed_elements():
    diff = diff_bpmn(V1, V2)

    assert [(e.element_id, e.element_type, e.name) for e in diff.added] == [
        ("escalate", "userTask", "Tell the manager"),
        ("f_escalate_lost", "sequenceFlow", ""),
        ("f_stale_escalate", "sequenceFlow", ""),
    ]
    assert [(e.element_id, e.element_type, e.name) for e in diff.removed] == [
        ("archive", "task", "Archive"),
        ("f_stale_archive", "sequenceFlow", ""),
    ]
    # `done` only moved on the canvas and `lost` only gained another incoming flow: no change.
    assert _changes(diff) == {
        "Lane_Rep": {
            "lane members": (
                "archive, call, decide, done, lost, score, stale, start",
                "call, decide, done, escalate, lost, score, stale, start",
            )
        },
        "call": {
            "name": ("Call the lead", "Call the lead back"),
            "property due_days": ("2", "3"),
        },
        "f_decide_done": {"condition": ("score >= 5", "score >= 7")},
        "f_decide_lost": {"targetRef": ("lost", "escalate")},
        "score": {"script": ("score = budget // 1000", "score = budget // 500")},
        "stale": {"timer timeDuration": ('"P3D"', '"P5D"')},
    }


def test_bpmn_diff_backwards_swaps_added_and_removed():
    diff = diff_bpmn(V2, V1)

    assert [e.element_id for e in diff.added] == ["archive", "f_stale_archive"]
    assert [e.element_id for e in diff.removed] == [
        "escalate",
        "f_escalate_lost",
        "f_stale_escalate",
    ]
    assert _changes(diff)["f_decide_lost"] == {"targetRef": ("escalate", "lost")}


def test_bpmn_diff_of_a_version_with_itself_is_empty():
    assert diff_bpmn(V1, V1.decode()).is_empty


def test_bpmn_diff_reports_a_changed_type_and_a_new_property():
    changed = V1.replace(
        b'<bpmn:task id="archive" name="Archive">', b'<bpmn:manualTask id="archive" name="Archive">'
    )
    changed = changed.replace(b"</bpmn:task>", b"</bpmn:manualTask>")
    changed = changed.replace(
        b'<spiffworkflow:property name="due_days" value="2" />',
        b'<spiffworkflow:property name="due_days" value="2" />\n'
        b'          <spiffworkflow:property name="stage" value="call" />',
    )

    diff = diff_bpmn(V1, changed)

    assert _changes(diff) == {
        "archive": {"type": ("task", "manualTask")},
        "call": {"property stage": ("", "call")},
    }
    assert [e.element_type for e in diff.changed] == ["manualTask", "userTask"]


def test_bpmn_diff_refuses_a_document_with_entities():
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(UnsafeXml, match="DOCTYPE"):
        diff_bpmn(V1, bomb)
