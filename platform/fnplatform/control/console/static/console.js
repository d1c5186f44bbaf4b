// The fn console's charts: SVG lines drawn from the JSON block the page carries (<script type="application/json"
// id="fn-series">), into each <div class="chart" data-chart="FUNCTION" data-measures="p50 p99">. No library, no
// network: without this file the pages show the same numbers as tables.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    return node;
  }

  function draw(box, lines) {
    var points = [];
    lines.forEach(function (line) { line.forEach(function (p) { if (p[1] !== null) points.push(p); }); });
    var width = 100, height = 40;
    var svg = el("svg", { "class": "chart-svg", viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none",
                          role: "img" });
    svg.appendChild(el("rect", { "class": "frame", x: 0, y: 0, width: width, height: height }));
    if (points.length === 0) {
      svg.setAttribute("aria-label", "no data yet");
      box.appendChild(svg);
      return;
    }
    var t0 = Math.min.apply(null, points.map(function (p) { return p[0]; }));
    var t1 = Math.max.apply(null, points.map(function (p) { return p[0]; }));
    var top = Math.max.apply(null, points.map(function (p) { return p[1]; })) || 1;
    lines.forEach(function (line, index) {
      // A gap (null) in the data breaks the line rather than drawing it to zero.
      var runs = [[]];
      line.forEach(function (p) {
        if (p[1] === null) { runs.push([]); return; }
        var x = t1 > t0 ? (p[0] - t0) / (t1 - t0) * width : width;
        runs[runs.length - 1].push(x.toFixed(2) + "," + (height - p[1] / top * (height - 2)).toFixed(2));
      });
      runs.forEach(function (run) {
        if (run.length === 1) {  // a lone value (one interval so far, or between gaps): a dot, not an empty line
          var xy = run[0].split(",");
          svg.appendChild(el("circle", { "class": "dot s" + index, cx: xy[0], cy: xy[1], r: 1.5 }));
        }
        if (run.length) svg.appendChild(el("polyline", { "class": "line s" + index, points: run.join(" ") }));
      });
    });
    var label = el("title", {});
    label.textContent = "max " + top;
    svg.appendChild(label);
    svg.setAttribute("aria-label", "max " + top);
    box.appendChild(svg);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var block = document.getElementById("fn-series");
    if (!block) return;
    var series = JSON.parse(block.textContent || "{}");
    Array.prototype.forEach.call(document.querySelectorAll("div.chart[data-chart]"), function (box) {
      var data = series[box.getAttribute("data-chart")];
      if (!data) return;
      var measures = (box.getAttribute("data-measures") || "rate").split(" ");
      draw(box, measures.map(function (m) { return data[m] || []; }));
      box.setAttribute("data-drawn", "true");
    });
  });
})();
