/* The admins' modeler: bpmn-js with check, save and deploy, and the deploy problems drawn on the
 * elements they belong to. A plain script: the page gives its data in #dz-data and #dz-text. */
(function () {
  'use strict';

  var data = JSON.parse(document.getElementById('dz-data').textContent);
  var text = JSON.parse(document.getElementById('dz-text').textContent);
  var csrf = document.getElementById('dz-csrf').value;
  var status = document.getElementById('dz-status');
  var list = document.getElementById('dz-problems');
  var empty = document.getElementById('dz-problems-empty');

  var modeler = new BpmnJS({ container: '#dz-canvas' });
  window.stagecraftModeler = modeler;  // the browser tests drive bpmn-js through it
  var canvas = modeler.get('canvas');
  var overlays = modeler.get('overlays');
  var registry = modeler.get('elementRegistry');
  var selection = modeler.get('selection');
  var modeling = modeler.get('modeling');
  var moddle = modeler.get('moddle');
  var marked = [];

  function say(message, tone) {
    status.textContent = message;
    status.className = tone ? 'dz-' + tone : '';
  }

  function count(template, n) {
    return template.replace('{count}', String(n));
  }

  function clearProblems() {
    overlays.remove({ type: 'dz-problem' });
    marked.forEach(function (id) {
      canvas.removeMarker(id, 'dz-has-error');
      canvas.removeMarker(id, 'dz-has-warning');
    });
    marked = [];
    list.textContent = '';
  }

  function reveal(element) {
    // Readable size, with the element in view (fit-viewport shrinks a wide process a lot).
    if (canvas.zoom() < 0.9) { canvas.zoom(1); }
    canvas.scrollToElement(element, { top: 120, bottom: 120, left: 160, right: 120 });
  }

  function focus(element) {
    selection.select(element);
    reveal(element);
  }

  function where(problem, element) {
    if (problem.file && problem.file !== data.file) {
      return problem.file + (problem.line ? ':' + problem.line : '');
    }
    if (element) {
      var name = element.businessObject && element.businessObject.name;
      return name ? name + ' (' + element.id + ')' : element.id;
    }
    if (problem.element_id) { return problem.element_id + ' — ' + text.notOnDiagram; }
    return problem.line ? data.file + ':' + problem.line : data.file;
  }

  function showProblems(problems) {
    clearProblems();
    var perElement = {};
    problems.forEach(function (problem) {
      var ours = !problem.file || problem.file === data.file;
      var element = ours && problem.element_id ? registry.get(problem.element_id) : null;
      var item = document.createElement('li');
      item.className = 'dz-' + problem.severity;
      item.dataset.elementId = problem.element_id || '';
      var button = document.createElement('button');
      button.type = 'button';
      var label = document.createElement('strong');
      label.textContent = (problem.severity === 'error' ? text.error : text.warning) + ' · ' + where(problem, element);
      button.appendChild(label);
      button.appendChild(document.createElement('br'));
      button.appendChild(document.createTextNode(problem.message));
      if (element) {
        button.addEventListener('click', function () { focus(element); });
        var seen = perElement[element.id] || (perElement[element.id] = { errors: 0, warnings: 0 });
        if (problem.severity === 'error') { seen.errors += 1; } else { seen.warnings += 1; }
      } else {
        button.disabled = !ours;
      }
      item.appendChild(button);
      list.appendChild(item);
    });
    Object.keys(perElement).forEach(function (id) {
      var seen = perElement[id];
      var severity = seen.errors ? 'error' : 'warning';
      canvas.addMarker(id, 'dz-has-' + severity);
      marked.push(id);
      var badge = document.createElement('span');
      badge.className = 'dz-badge dz-' + severity;
      badge.dataset.elementId = id;
      badge.textContent = '⚠ ' + (seen.errors + seen.warnings);
      badge.title = seen.errors + ' ' + text.error + ', ' + seen.warnings + ' ' + text.warning;
      overlays.add(id, 'dz-problem', { position: { top: -10, right: 10 }, html: badge });
    });
    empty.hidden = problems.length > 0;
    var first = problems.filter(function (p) {
      return p.severity === 'error' && perElement[p.element_id];
    })[0];
    if (first) { reveal(registry.get(first.element_id)); }
  }

  function post(url, fields) {
    return modeler.saveXML({ format: true }).then(function (saved) {
      var body = new FormData();
      body.append('csrf_token', csrf);
      body.append('xml', saved.xml);
      Object.keys(fields || {}).forEach(function (key) { body.append(key, fields[key]); });
      return fetch(url, {
        method: 'POST',
        body: body,
        credentials: 'same-origin',
        headers: { 'Accept': 'application/json', 'X-CSRFToken': csrf }
      });
    }).then(function (response) {
      return response.json().then(function (json) { return { status: response.status, json: json }; });
    });
  }

  function report(result, done) {
    var json = result.json;
    if (json.problems) { showProblems(json.problems); }
    if (result.status === 422 && json.problems) {
      say(count(text.problemsFound, json.errors), 'bad');
    } else if (result.status >= 400) {
      var fields = json.fields || {};
      var detail = Object.keys(fields).map(function (k) { return fields[k].join(' '); }).join(' ');
      say(text.failed + ' ' + (detail || json.error || result.status), 'bad');
    } else {
      var warnings = (json.problems || []).length;
      say(done(json) + (warnings ? ' ' + count(text.warnings, warnings) : ''), 'good');
    }
    return result;
  }

  function fail(error) { say(text.failed + ' ' + error, 'bad'); }

  document.getElementById('dz-check').addEventListener('click', function () {
    say(text.checking);
    post(data.checkUrl).then(function (result) {
      var json = result.json;
      if (result.status === 200 && !json.ok) {
        showProblems(json.problems);
        say(count(text.checkFound, json.errors), 'bad');
        return;
      }
      report(result, function () { return text.noProblems; });
    }).catch(fail);
  });

  document.getElementById('dz-save').addEventListener('click', function () {
    say(text.saving);
    post(data.saveUrl).then(function (result) {
      report(result, function (json) { return json.message; });
    }).catch(fail);
  });

  document.getElementById('dz-deploy-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var comment = document.getElementById('dz-comment').value.trim();
    if (!comment) { say(text.commentRequired, 'bad'); return; }
    say(text.deploying);
    post(data.deployUrl, { comment: comment }).then(function (result) {
      report(result, function (json) { return json.message; });
      if (result.status === 200) { document.getElementById('dz-comment').value = ''; }
    }).catch(fail);
  });

  /* The element panel: name, script of a script task, condition of a sequence flow. */
  var form = document.getElementById('dz-element-form');
  var current = null;

  function isType(element, type) {
    return element && element.businessObject && element.businessObject.$instanceOf(type);
  }

  function showElement(element) {
    current = element;
    document.getElementById('dz-no-selection').hidden = !!element;
    form.hidden = !element;
    if (!element) { return; }
    var bo = element.businessObject;
    document.getElementById('dz-element-id').textContent = element.id;
    document.getElementById('dz-element-type').textContent = bo.$type.replace('bpmn:', '');
    document.getElementById('dz-element-name').value = bo.name || '';
    var script = isType(element, 'bpmn:ScriptTask');
    var flow = isType(element, 'bpmn:SequenceFlow');
    document.getElementById('dz-script-row').hidden = !script;
    document.getElementById('dz-condition-row').hidden = !flow;
    document.getElementById('dz-element-script').value = script ? (bo.script || '') : '';
    document.getElementById('dz-element-condition').value =
      flow && bo.conditionExpression ? (bo.conditionExpression.body || '') : '';
  }

  modeler.get('eventBus').on('selection.changed', function (event) {
    var chosen = event.newSelection.length === 1 ? event.newSelection[0] : null;
    showElement(chosen && chosen.type !== 'label' ? chosen : null);
  });

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (!current) { return; }
    var changes = { name: document.getElementById('dz-element-name').value || undefined };
    if (isType(current, 'bpmn:ScriptTask')) {
      changes.script = document.getElementById('dz-element-script').value;
      changes.scriptFormat = current.businessObject.scriptFormat || 'python';
    }
    if (isType(current, 'bpmn:SequenceFlow')) {
      var condition = document.getElementById('dz-element-condition').value.trim();
      changes.conditionExpression = condition
        ? moddle.create('bpmn:FormalExpression', { body: condition })
        : undefined;
    }
    modeling.updateProperties(current, changes);
  });

  modeler.importXML(data.xml).then(function () {
    canvas.zoom('fit-viewport');
    document.body.dataset.modelerReady = '1';
  }).catch(function (error) {
    say(text.openFailed + ' ' + error.message, 'bad');
  });
})();
