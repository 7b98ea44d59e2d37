"""Parse uploaded XML without entity expansion, DTDs or network access, within a size limit."""

from __future__ import annotations

from lxml import etree

MAX_XML_BYTES = 2 * 1024 * 1024
_NO_DTD = "DOCTYPE declarations (DTDs and entities) are not allowed"


class UnsafeXml(ValueError):
    """The document was refused before or while parsing; `line` is set where known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


def parse_xml(content: bytes, limit: int = MAX_XML_BYTES) -> etree._ElementTree:
    """Return the parsed tree, or raise UnsafeXml for oversize, malformed or DOCTYPE documents."""
    if len(content) > limit:
        raise UnsafeXml(f"file is {len(content):,} bytes; the limit is {limit:,} bytes")
    head = content[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise UnsafeXml(_NO_DTD, content[: head.find(b"<!")].count(b"\n") + 1)
    try:
        tree = etree.ElementTree(etree.fromstring(content, _parser()))
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"not well-formed XML: {exc.msg}", exc.lineno) from exc
    docinfo = tree.docinfo
    # BPMN and DMN never need a DTD; any DOCTYPE is how entity bombs and XXE get in.
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise UnsafeXml(_NO_DTD, 1)
    for node in tree.iter():
        if isinstance(node, etree._Entity):
            raise UnsafeXml(f"entity reference &{node.name}; is not allowed", node.sourceline)
    return tree
