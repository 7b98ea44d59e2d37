/* A read-only diagram of one version; in a diff, added elements are green and changed amber. */
(function () {
  'use strict';

  var data = JSON.parse(document.getElementById('dz-view-data').textContent);
  var viewer = new BpmnJS({ container: '#dz-viewer' });
  window.stagecraftViewer = viewer;

  viewer.importXML(data.xml).then(function () {
    var canvas = viewer.get('canvas');
    var registry = viewer.get('elementRegistry');
    canvas.zoom('fit-viewport');
    function mark(id, marker) {
      var element = registry.get(id);
      if (!element) { return; }
      // A lane or pool is drawn around other elements: outline it, do not fill it.
      var container = /^bpmn:(Lane|Participant)$/.test(element.type);
      canvas.addMarker(id, container ? marker + '-outline' : marker);
    }
    data.added.forEach(function (id) { mark(id, 'dz-added'); });
    data.changed.forEach(function (id) { mark(id, 'dz-changed'); });
    document.querySelectorAll('[data-element-id]').forEach(function (row) {
      var element = registry.get(row.dataset.elementId);
      if (!element) { return; }
      row.style.cursor = 'pointer';
      row.addEventListener('click', function () {
        if (canvas.scrollToElement) { canvas.scrollToElement(element); }
      });
    });
    document.body.dataset.viewerReady = '1';
  });
})();
