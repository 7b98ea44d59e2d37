/* Show the generated pipeline (or nothing) in a read-only bpmn-js viewer. */
(function () {
  'use strict';
  var holder = document.getElementById('stage-diagram');
  var source = document.getElementById('stage-diagram-data');
  if (!holder || !source || typeof BpmnJS === 'undefined') { return; }
  var data = JSON.parse(source.textContent);
  var viewer = new BpmnJS({ container: holder });
  viewer.importXML(data.xml).then(function () {
    viewer.get('canvas').zoom('fit-viewport');
    holder.dataset.ready = '1';
  }).catch(function (error) {
    holder.textContent = String(error && error.message ? error.message : error);
  });
})();
