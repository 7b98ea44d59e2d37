// Commission per rep (bars) with attainment % (line) on the run page; data from the page.
(function () {
  "use strict";
  var holder = document.getElementById("commission-chart-data");
  var canvas = document.getElementById("commission-chart");
  if (!holder || !canvas || typeof Chart === "undefined") { return; }
  var data = JSON.parse(holder.textContent);
  var number = function (v) { return v === null ? null : Number(v); };
  new Chart(canvas, {
    data: {
      labels: data.labels,
      datasets: [
        { type: "bar", label: data.totalLabel, data: data.totals.map(number), yAxisID: "y",
          backgroundColor: "#2563eb" },
        { type: "line", label: data.attainmentLabel, data: data.attainment.map(number),
          yAxisID: "pct", borderColor: "#f59e0b", backgroundColor: "#f59e0b" }
      ]
    },
    options: {
      animation: false,
      scales: { y: { beginAtZero: true, position: "left" },
                pct: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } }
    }
  });
}());
