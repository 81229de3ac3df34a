/* dropgz dashboard: confirmations, live refresh, charts (uPlot, vendored). Text from the
   server is only ever set with textContent or parsed from our own autoescaped HTML. */
(function () {
  "use strict";

  // Every action form asks first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  function size(n) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return i === 0 ? Math.round(n).toLocaleString("en-US") + " B" : n.toFixed(1) + " " + units[i];
  }
  function stamp() {
    var el = document.getElementById("refreshed");
    if (el) { el.textContent = "updated " + new Date().toLocaleTimeString(); }
  }
  function pick(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? null : o[k]; }, obj);
  }

  var main = document.getElementById("live");
  if (!main) { return; }
  var every = Math.max(3, parseInt(main.getAttribute("data-live") || "10", 10)) * 1000;
  var charts = {}, range = "hour";
  var isOverview = !!document.getElementById("chart-files");

  function chart(id, label, color, values, x, fmt) {
    var el = document.getElementById(id);
    var width = Math.max(280, el.clientWidth);
    var data = [x, values];
    if (charts[id]) { charts[id].setData(data); return; }
    charts[id] = new uPlot({
      width: width, height: 220, legend: {show: false}, cursor: {drag: {x: false, y: false}},
      scales: {x: {time: true}, y: {range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; }}},
      axes: [{stroke: "#667085", grid: {stroke: "#eef0f3"}},
             {stroke: "#667085", grid: {stroke: "#eef0f3"}, size: 70,
              values: function (u, vals) { return vals.map(fmt); }}],
      series: [{}, {label: label, stroke: color, width: 2, fill: color + "22", points: {show: false}}]
    }, data, el);
  }

  function drawOverview(body) {
    document.querySelectorAll("[data-metric]").forEach(function (el) {
      var key = el.getAttribute("data-metric");
      var value = key.indexOf(".") > 0 ? pick(body, key) : body.totals[key];
      if (value == null) { return; }
      el.textContent = el.getAttribute("data-format") === "size" ? size(value)
        : Number(value).toLocaleString("en-US");
    });
    var s = body.series;
    chart("chart-files", "files", "#2563eb", s.compressed, s.x,
          function (v) { return Number(v).toLocaleString("en-US"); });
    chart("chart-saved", "bytes saved", "#12805c", s.saved, s.x, size);
  }

  function refreshOverview() {
    return fetch("api/overview?range=" + encodeURIComponent(range), {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (body) { drawOverview(body); stamp(); });
  }

  function refreshPage() {
    // The same page, rendered (and escaped) by the server: swap the main content.
    return fetch(window.location.href, {credentials: "same-origin"})
      .then(function (r) { if (!r.ok || r.redirected) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh && !document.activeElement.closest("form")) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes));
          stamp();
        }
      });
  }

  if (isOverview) {
    document.querySelectorAll("[data-range]").forEach(function (button) {
      button.addEventListener("click", function () {
        range = button.getAttribute("data-range");
        document.querySelectorAll("[data-range]").forEach(function (b) {
          b.classList.toggle("active", b === button);
        });
        refreshOverview();
      });
    });
    refreshOverview().catch(function () {});
    setInterval(function () { refreshOverview().catch(function () {}); }, every);
  } else {
    stamp();
    setInterval(function () { refreshPage().catch(function () {}); }, every);
  }
})();
