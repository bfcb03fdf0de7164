// Live progress of the run over Server-Sent Events: the counts, the rate and its chart.
(function () {
  "use strict";
  var rates = [];
  var chart = document.getElementById("chart");
  function text(id, value) { var node = document.getElementById(id); if (node) { node.textContent = value; } }
  function draw() {
    var top = Math.max.apply(null, rates.concat([1])) * 1.2;
    var points = rates.map(function (rate, index) {
      return (index * 600 / 120).toFixed(1) + "," + (79 - rate / top * 78).toFixed(1);
    }).join(" ");
    var line = chart.querySelector("polyline");
    if (!line) { line = document.createElementNS("http://www.w3.org/2000/svg", "polyline"); line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2e7d32"); chart.appendChild(line); }
    line.setAttribute("points", points);
  }
  var source = new EventSource("/events");
  source.onmessage = function (event) {
    var state = JSON.parse(event.data);
    text("done", state.done.toLocaleString()); text("total", state.total.toLocaleString());
    text("sent", state.sent.toLocaleString()); text("failed", state.failed.toLocaleString());
    text("unknown", state.unknown.toLocaleString()); text("rate", state.rate);
    text("eta", state.eta ? ", about " + state.eta + " left" : "");
    var notes = document.getElementById("notes");
    if (notes && state.notes.length > notes.children.length) {
      state.notes.slice(notes.children.length).forEach(function (note) {
        var item = document.createElement("li"); item.textContent = note; notes.appendChild(item);
      });
    }
    rates.push(state.rate); if (rates.length > 120) { rates.shift(); } draw();
    if (state.finished) {
      source.close();
      text("state", state.error ? "Stopped: " + state.error : "Finished.");
      if (!state.error) { window.location.href = "/result"; }
    }
  };
})();
