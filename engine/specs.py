"""Serialized process specs: written once per deployed version, read through a memory cache."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs import BpmnProcessSpec
from SpiffWorkflow.spiff.serializer import DEFAULT_CONFIG

SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))
SERIALIZER_VERSION: str = SERIALIZER.VERSION
REGISTRY = SERIALIZER.registry

_CACHE_SIZE = 256
_cache: OrderedDict[str, tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]] = OrderedDict()
_cache_lock = threading.Lock()


def dump_specs(spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec]) -> str:
    """Return the canonical JSON of a process spec and the specs it calls."""
    body = {
        "spec": REGISTRY.convert(spec),
        "subprocess_specs": {name: REGISTRY.convert(s) for name, s in subprocess_specs.items()},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _restore(spec_json: str) -> tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]:
    body: dict[str, Any] = json.loads(spec_json)
    spec = REGISTRY.restore(body["spec"])
    subprocess_specs = {name: REGISTRY.restore(s) for name, s in body["subprocess_specs"].items()}
    return spec, subprocess_specs


def load_specs(
    spec_hash: str, read_json: Callable[[], str]
) -> tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]:
    """Return the restored specs of a definition version, cached by content hash.

    `read_json` is called only on a cache miss: the stored spec is large.
    """
    with _cache_lock:
        hit = _cache.get(spec_hash)
        if hit is not None:
            _cache.move_to_end(spec_hash)
            return hit
    restored = _restore(read_json())
    with _cache_lock:
        _cache[spec_hash] = restored
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return restored


def clear_spec_cache() -> None:
    """Forget every cached spec."""
    with _cache_lock:
        _cache.clear()
