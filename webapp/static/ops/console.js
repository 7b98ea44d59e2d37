// The ops console's diagrams: element states on the instance page, waiting counts on the heatmap.
// Data comes from JSON script tags the server wrote (never from HTML strings), and the BPMN XML
// from the console's diagram URL. Without this script the pages show the same facts as tables.
(function () {
  "use strict";

  var STATES = ["completed", "active", "error", "cancelled"];

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function badge(text, extraClass, title) {
    var span = document.createElement("span");
    span.className = "heat-badge" + (extraClass ? " " + extraClass : "");
    span.textContent = text;
    if (title) { span.title = title; }
    return span;
  }

  function markStates(viewer, states) {
    var canvas = viewer.get("canvas");
    var registry = viewer.get("elementRegistry");
    Object.keys(states).forEach(function (bpmnId) {
      var state = states[bpmnId];
      if (STATES.indexOf(state) >= 0 && registry.get(bpmnId)) {
        canvas.addMarker(bpmnId, "ops-state-" + state);
      }
    });
  }

  function showHeat(viewer, elements) {
    var overlays = viewer.get("overlays");
    var registry = viewer.get("elementRegistry");
    var most = elements.reduce(function (m, e) { return Math.max(m, e.waiting); }, 0);
    elements.forEach(function (e) {
      var shape = registry.get(e.bpmn_id);
      if (!shape) { return; }
      var holder = document.createElement("div");
      holder.className = "heat-overlay";
      holder.setAttribute("data-element", e.bpmn_id);
      if (e.waiting) {
        var waiting = badge(String(e.waiting), "heat-wait-count", e.average_wait);
        // Busier elements get a darker badge: the heat.
        var share = most ? e.waiting / most : 0;
        waiting.style.background = "rgba(29, 78, 216, " + (0.45 + 0.55 * share).toFixed(2) + ")";
        var wait = document.createElement("span");
        wait.className = "heat-wait";
        wait.textContent = e.average_wait;
        waiting.appendChild(wait);
        holder.appendChild(waiting);
      }
      if (e.errors) {
        holder.appendChild(badge(String(e.errors), "heat-error"));
      }
      overlays.add(e.bpmn_id, "ops-heat", { position: { bottom: -6, left: -6 }, html: holder });
    });
  }

  function start() {
    var container = document.getElementById("ops-diagram");
    if (!container || typeof BpmnJS === "undefined") { return; }
    var viewer = new BpmnJS({ container: container });
    fetch(container.getAttribute("data-diagram-url"), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("diagram: HTTP " + response.status); }
        return response.text();
      })
      .then(function (xml) { return viewer.importXML(xml); })
      .then(function () {
        var fallback = container.querySelector(".ops-diagram-fallback");
        if (fallback) { fallback.remove(); }
        viewer.get("canvas").zoom("fit-viewport");
        if (container.getAttribute("data-mode") === "instance") {
          markStates(viewer, readJson("ops-element-states") || {});
        } else {
          showHeat(viewer, readJson("ops-heat") || []);
        }
        container.setAttribute("data-ready", "1");
      })
      .catch(function (error) {
        container.setAttribute("data-error", String(error));
        var note = document.createElement("p");
        note.className = "error";
        note.textContent = String(error);
        container.appendChild(note);
      });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
