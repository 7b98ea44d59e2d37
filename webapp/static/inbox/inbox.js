// Inbox niceties on top of plain forms: a "select all" box for the task table.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.classList || !box.classList.contains("select-all")) return;
    var table = box.closest("table");
    if (!table) return;
    table.querySelectorAll('input[type=checkbox][name=task]').forEach(function (row) {
      row.checked = box.checked;
    });
  });
})();
