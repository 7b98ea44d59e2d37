// Cost, won revenue and collected cash per campaign on the campaign ROI page.
(function () {
  "use strict";
  var holder = document.getElementById("campaign-chart-data");
  var canvas = document.getElementById("campaign-chart");
  if (!holder || !canvas || typeof Chart === "undefined") { return; }
  var data = JSON.parse(holder.textContent);
  var number = function (v) { return v === null ? null : Number(v); };
  var datasets = [
    { label: data.revenueLabel, data: data.revenue.map(number), backgroundColor: "#16a34a" },
    { label: data.cashLabel, data: data.cash.map(number), backgroundColor: "#0ea5e9" }
  ];
  if (data.cost.some(function (v) { return v !== null; })) {
    datasets.unshift({ label: data.costLabel, data: data.cost.map(number),
                       backgroundColor: "#dc2626" });
  }
  new Chart(canvas, {
    type: "bar",
    data: { labels: data.labels, datasets: datasets },
    options: { animation: false, scales: { y: { beginAtZero: true } } }
  });
}());
