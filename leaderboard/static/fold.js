// A link to a folded <details> (the "how" above the ranking) opens it: a fragment link only scrolled to it, closed.
document.addEventListener("DOMContentLoaded", function () {
  Array.prototype.forEach.call(document.querySelectorAll('a[href^="#"]'), function (link) {
    var target = document.getElementById(link.getAttribute("href").slice(1));
    if (target && target.tagName === "DETAILS") {
      link.addEventListener("click", function () { target.open = true; });
    }
  });
});
