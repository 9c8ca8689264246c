// Focus on one node of the lineage graph: it, everything upstream and everything downstream
// stay lit, the rest dims. The focus lives in the URL (#focus=<unique id>) so pages can link to it.
(function () {
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var parents = {}, children = {};
  data.edges.forEach(function (e) {
    (parents[e.to] = parents[e.to] || []).push(e.from);
    (children[e.from] = children[e.from] || []).push(e.to);
  });
  function walk(start, next) {
    var seen = {}, stack = [start];
    while (stack.length) {
      var id = stack.pop();
      (next[id] || []).forEach(function (n) { if (!seen[n]) { seen[n] = true; stack.push(n); } });
    }
    return seen;
  }
  var nodes = document.querySelectorAll("#lineage .node");
  var edges = document.querySelectorAll("#lineage .edge");
  function focus(id) {
    var up = walk(id, parents), down = walk(id, children);
    var lit = function (n) { return n === id || up[n] || down[n]; };
    nodes.forEach(function (el) {
      var n = el.getAttribute("data-id");
      el.classList.toggle("focused", n === id);
      el.classList.toggle("dimmed", !!id && !lit(n));
    });
    edges.forEach(function (el) {
      var on = id && lit(el.getAttribute("data-from")) && lit(el.getAttribute("data-to"));
      el.classList.toggle("lit", !!on);
      el.classList.toggle("dimmed", !!id && !on);
    });
    document.body.setAttribute("data-focus", id || "");
  }
  nodes.forEach(function (el) {
    el.addEventListener("click", function () {
      var id = el.getAttribute("data-id");
      history.replaceState(null, "", "#focus=" + encodeURIComponent(id));
      focus(id);
    });
    el.addEventListener("dblclick", function () { window.location.href = el.getAttribute("data-href"); });
  });
  document.getElementById("clear-focus").addEventListener("click", function (ev) {
    ev.preventDefault();
    history.replaceState(null, "", "#");
    focus(null);
  });
  var m = /#focus=(.+)$/.exec(window.location.hash);
  if (m) { focus(decodeURIComponent(m[1])); }
})();
