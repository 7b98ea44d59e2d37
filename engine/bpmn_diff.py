"""Compare two BPMN documents element by element (by id), ignoring layout.

An element is anything in the BPMN namespace with an id, except event and loop definitions,
which belong to the element that holds them. What an element is made of (its attributes, script,
condition, timer, extension properties, documentation, lane members) is flattened into named
aspects; a change lists every aspect whose value differs. Moving a shape on the canvas changes
only the diagram interchange, so it is not a change; moving a sequence flow to another source or
target is (its `sourceRef`/`targetRef` aspect).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from engine.deploy_checks import BPMN_NS, SPIFF_NS
from engine.xmlsafe import parse_xml

# Children a reader never edits: they repeat what the sequence flows say.
_DERIVED = {"incoming", "outgoing"}
# Tags that own no identity of their own, however they are written.
_FOLDED_SUFFIXES = ("EventDefinition", "LoopCharacteristics")
_LABELS = {"conditionExpression": "condition", "timerEventDefinition": "timer"}


@dataclass(frozen=True)
class AspectChange:
    """One aspect of an element with its value before and after ("" when absent)."""

    aspect: str
    before: str
    after: str

    def as_dict(self) -> dict[str, str]:
        return {"aspect": self.aspect, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class ElementChange:
    """An element added, removed or changed between two versions."""

    element_id: str
    kind: str  # "added", "removed" or "changed"
    element_type: str
    name: str
    changes: tuple[AspectChange, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "element_id": self.element_id,
            "kind": self.kind,
            "type": self.element_type,
            "name": self.name,
            "changes": [c.as_dict() for c in self.changes],
        }


@dataclass(frozen=True)
class BpmnDiff:
    added: list[ElementChange] = field(default_factory=list)
    removed: list[ElementChange] = field(default_factory=list)
    changed: list[ElementChange] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": [e.as_dict() for e in self.added],
            "removed": [e.as_dict() for e in self.removed],
            "changed": [e.as_dict() for e in self.changed],
        }


def _localname(node: etree._Element) -> str:
    return etree.QName(node).localname


def _is_element(node: etree._Element) -> bool:
    if not isinstance(node.tag, str) or etree.QName(node).namespace != BPMN_NS:
        return False
    name = _localname(node)
    if name == "definitions" or name.endswith(_FOLDED_SUFFIXES) or not node.get("id"):
        return False
    return all(
        _localname(parent) != "extensionElements" for parent in node.iterancestors() if parent.tag
    )


def _attribute_name(name: str) -> str:
    qname = etree.QName(name)
    return f"spiffworkflow:{qname.localname}" if qname.namespace == SPIFF_NS else qname.localname


def _text(node: etree._Element) -> str:
    return (node.text or "").strip()


def _attrs_text(node: etree._Element) -> str:
    pairs = sorted((_attribute_name(k), v) for k, v in node.attrib.items() if k != "id")
    return ", ".join(f"{k}={v}" for k, v in pairs)


def _extension_aspects(ext: etree._Element, aspects: dict[str, str]) -> None:
    for node in ext.iter():
        if node is ext or not isinstance(node.tag, str):
            continue
        name = _localname(node)
        if name == "property":
            aspects[f"property {node.get('name', '')}"] = node.get("value", _text(node))
        elif name == "properties":
            continue
        elif name == "parameter":
            aspects[f"parameter {node.get('id', '')}"] = _attrs_text(node)
        else:
            value = " ".join(part for part in (_attrs_text(node), _text(node)) if part)
            if value or len(node) == 0:
                aspects[name] = value


def _child_aspects(node: etree._Element, prefix: str, aspects: dict[str, str]) -> None:
    """Fold a child without its own identity into `aspects`, recursing into its children."""
    name = _localname(node)
    if name in _DERIVED:
        return
    if name == "extensionElements":
        _extension_aspects(node, aspects)
        return
    if name == "flowNodeRef":
        members = [m for m in aspects.get("lane members", "").split(", ") if m]
        aspects["lane members"] = ", ".join(sorted([*members, _text(node)]))
        return
    label = prefix + _LABELS.get(name, name)
    aspects[label] = " | ".join(part for part in (_attrs_text(node), _text(node)) if part)
    for child in node:
        if isinstance(child.tag, str) and not _is_element(child):
            _child_aspects(child, label + " ", aspects)


def _aspects(node: etree._Element) -> dict[str, str]:
    aspects = {_attribute_name(key): value for key, value in node.attrib.items() if key != "id"}
    for child in node:
        if isinstance(child.tag, str) and not _is_element(child):
            _child_aspects(child, "", aspects)
    return aspects


def _elements(content: bytes) -> dict[str, etree._Element]:
    root = parse_xml(content).getroot()
    return {node.get("id", ""): node for node in root.iter() if _is_element(node)}


def _entry(
    kind: str, node: etree._Element, changes: tuple[AspectChange, ...] = ()
) -> ElementChange:
    return ElementChange(node.get("id", ""), kind, _localname(node), node.get("name", ""), changes)


def diff_bpmn(old: bytes | str, new: bytes | str) -> BpmnDiff:
    """Return the elements added, removed and changed from `old` to `new`, each sorted by id.

    :raises engine.xmlsafe.UnsafeXml: when either document is refused by the safe parser.
    """
    before = _elements(old.encode() if isinstance(old, str) else old)
    after = _elements(new.encode() if isinstance(new, str) else new)
    diff = BpmnDiff()
    for element_id in sorted(after.keys() - before.keys()):
        diff.added.append(_entry("added", after[element_id]))
    for element_id in sorted(before.keys() - after.keys()):
        diff.removed.append(_entry("removed", before[element_id]))
    for element_id in sorted(before.keys() & after.keys()):
        old_node, new_node = before[element_id], after[element_id]
        old_aspects, new_aspects = _aspects(old_node), _aspects(new_node)
        if _localname(old_node) != _localname(new_node):
            old_aspects["type"], new_aspects["type"] = _localname(old_node), _localname(new_node)
        changes = tuple(
            AspectChange(aspect, old_aspects.get(aspect, ""), new_aspects.get(aspect, ""))
            for aspect in sorted(old_aspects.keys() | new_aspects.keys())
            if old_aspects.get(aspect, "") != new_aspects.get(aspect, "")
        )
        if changes:
            diff.changed.append(_entry("changed", new_node, changes))
    return diff
