// Sortable tables without any library: click a header to sort by that column; click again to reverse.
// Cells carry data-value (a number, or empty when the score is missing); missing values always sort last.
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-value");
    if (v === null) return cell.textContent.trim().toLowerCase();
    return v === "" ? null : parseFloat(v);
  }
  function sortBy(table, index, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index]), y = key(b.cells[index]);
      if (x === null && y === null) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      var order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute("aria-sort", i === index ? (descending ? "descending" : "ascending") : "none");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
        th.tabIndex = 0;  // reachable by keyboard: Enter or Space sorts as a click does
        th.addEventListener("click", function () {
          var numeric = th.getAttribute("data-numeric") === "1";
          var current = th.getAttribute("aria-sort");
          var descending = current === "ascending" ? true : current === "descending" ? false : numeric;
          sortBy(table, index, descending);
        });
        th.addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); th.click(); }
        });
      });
    });
  });
})();
