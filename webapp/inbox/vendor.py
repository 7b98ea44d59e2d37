"""Front-end packages from node_modules, served file by file from a whitelist."""

from __future__ import annotations

from flask import Blueprint, Response, abort, send_file

from webapp.extensions import ROOT

bp = Blueprint("vendor", __name__)
NODE_MODULES = ROOT / "node_modules"
# Public name -> file below node_modules. Nothing else in node_modules is reachable.
VENDOR_FILES = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "bpmn-modeler.min.js": "bpmn-js/dist/bpmn-modeler.production.min.js",
    "bpmn-viewer.min.js": "bpmn-js/dist/bpmn-navigated-viewer.production.min.js",
    "diagram-js.css": "bpmn-js/dist/assets/diagram-js.css",
    "bpmn-js.css": "bpmn-js/dist/assets/bpmn-js.css",
    "bpmn-font.css": "bpmn-js/dist/assets/bpmn-font/css/bpmn-embedded.css",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
}
MIMETYPES = {".js": "text/javascript", ".css": "text/css"}


@bp.get("/static/vendor/<name>")
def asset(name: str) -> Response:
    relative = VENDOR_FILES.get(name)
    path = NODE_MODULES / relative if relative else None
    if path is None or not path.is_file():
        abort(404)
    return send_file(path, mimetype=MIMETYPES[path.suffix], max_age=7 * 86400)
