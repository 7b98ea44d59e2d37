/* Draw every <canvas data-chart="{Chart.js config}"> on the page with Chart.js.
   The charts are kept in window.stagecraftCharts (by canvas id) for tests and for resizing. */
(function () {
  'use strict';
  var palette = ['#2563eb', '#16a34a', '#f59e0b', '#9333ea', '#dc2626', '#0891b2'];

  function colour(config) {
    (config.data.datasets || []).forEach(function (dataset, index) {
      var c = palette[index % palette.length];
      if (!dataset.backgroundColor) { dataset.backgroundColor = dataset.type === 'line' ? c : c + 'cc'; }
      if (!dataset.borderColor) { dataset.borderColor = c; }
      if (dataset.type === 'line' || config.type === 'line') { dataset.fill = false; dataset.spanGaps = true; }
    });
  }

  function draw() {
    if (typeof Chart === 'undefined') { return; }
    window.stagecraftCharts = window.stagecraftCharts || {};
    document.querySelectorAll('canvas[data-chart]').forEach(function (canvas) {
      var config;
      try { config = JSON.parse(canvas.getAttribute('data-chart')); } catch (e) { return; }
      colour(config);
      config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
      window.stagecraftCharts[canvas.id] = new Chart(canvas, config);
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', draw);
  } else {
    draw();
  }
})();
