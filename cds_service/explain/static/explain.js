// Draws the page's plots from the JSON data blocks the server embedded (no inline script: CSP).
// Without JavaScript the same data is in the tables under each plot.
"use strict";
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", function () {
  if (typeof Plotly === "undefined") { return; }
  document.querySelectorAll("[data-figure]").forEach(function (el) {
    var data = document.getElementById(el.getAttribute("data-figure"));
    if (!data) { return; }
    var fig = JSON.parse(data.textContent);
    Plotly.newPlot(el, fig.data, fig.layout, fig.config).then(function () {
      el.setAttribute("data-rendered", "true");
    });
  });
});
window.addEventListener("beforeprint", function () {
  document.querySelectorAll("details").forEach(function (el) { el.open = true; });   // print every source
  document.querySelectorAll("[data-rendered]").forEach(function (el) { Plotly.Plots.resize(el); });
});
