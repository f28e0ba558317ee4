// raibid web pages: live updates over Server-Sent Events. The pages work
// without this script; it only keeps them current.
"use strict";
(function () {
  var body = document.body;
  // The DOM keeps at most this many live-appended log lines; older ones are
  // in the paged view and the raw log.
  var MAX_LINES = 5000;

  function refreshRows() {
    fetch(body.dataset.rows, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) document.getElementById("rows").innerHTML = html; })
      .catch(function () {});
  }

  if (body.dataset.page === "list") {
    var pending = null;
    var events = new EventSource("/ui/events");
    events.addEventListener("job", function () {
      if (pending) return;
      pending = setTimeout(function () { pending = null; refreshRows(); }, 300);
    });
  }

  if (body.dataset.page === "job") {
    var log = document.getElementById("log");
    // A #L123 link opens the step that holds the line; otherwise the failed
    // step is opened and scrolled to its last line, or a live job to its end.
    var showLine = function () {
      var target = location.hash && document.getElementById(location.hash.slice(1));
      if (!target) return false;
      var d = target.closest("details");
      if (d) d.open = true;
      var old = log.querySelector(".l.hl");
      if (old) old.classList.remove("hl");
      target.classList.add("hl");
      target.scrollIntoView({ block: "center" });
      return true;
    };
    window.addEventListener("hashchange", showLine);
    var failed = log.querySelector("details[data-failed]");
    if (showLine()) {
      // the linked line is shown
    } else if (failed) {
      var lines = failed.querySelectorAll(".l");
      if (lines.length) lines[lines.length - 1].scrollIntoView({ block: "end" });
    } else if (body.dataset.stream) {
      window.scrollTo(0, document.body.scrollHeight);
    }
  }

  if (body.dataset.page === "job" && body.dataset.stream) {
    var shown = document.getElementById("shown");
    var total = document.getElementById("total");
    var stream = new EventSource(body.dataset.stream);
    var atEnd = function () { return window.innerHeight + window.scrollY >= document.body.scrollHeight - 60; };
    // One section per step: lines of steps running at once go each to its own.
    var section = function (step) {
      var kids = log.children;
      for (var i = kids.length - 1; i >= 0; i--) {
        if (kids[i].dataset.step === step) return kids[i].querySelector(".lines");
      }
      var d = document.createElement("details");
      d.className = "step";
      d.dataset.step = step;
      d.open = true;
      var s = document.createElement("summary");
      var name = document.createElement("span");
      name.className = "sname";
      name.textContent = step;
      s.appendChild(name);
      var pre = document.createElement("pre");
      pre.className = "lines";
      d.appendChild(s);
      d.appendChild(pre);
      log.appendChild(d);
      return pre;
    };
    // The server sends each line's text as HTML it has escaped and coloured.
    stream.addEventListener("line", function (e) {
      var l = JSON.parse(e.data);
      var follow = atEnd();
      var div = document.createElement("div");
      div.className = l.cont ? "l c" : "l";
      var n = document.createElement(l.n ? "a" : "span");
      n.className = "n";
      if (l.n) { div.id = "L" + l.n; n.href = "#L" + l.n; n.textContent = l.n; }
      var t = document.createElement("span");
      t.className = "t";
      t.innerHTML = l.html;
      div.appendChild(n);
      div.appendChild(t);
      section(l.step).appendChild(div);
      var all = log.querySelectorAll(".l");
      for (var i = 0; all.length - i > MAX_LINES; i++) all[i].remove();
      shown.textContent = log.querySelectorAll(".l").length;
      total.textContent = parseInt(total.textContent, 10) + 1;
      if (follow) window.scrollTo(0, document.body.scrollHeight);
    });
    stream.addEventListener("summary", function (e) {
      document.getElementById("summary").innerHTML = e.data;
    });
    // After the end the agent may still be recording its steps' last state
    // (a cancel reaches it within a poll): read the page again, twice.
    var refresh = function () {
      fetch(location.pathname, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          document.getElementById("summary").innerHTML = doc.getElementById("summary").innerHTML;
          var fresh = doc.querySelectorAll("#log details > summary");
          var mine = log.querySelectorAll("details > summary");
          if (fresh.length === mine.length) {
            for (var i = 0; i < fresh.length; i++) mine[i].innerHTML = fresh[i].innerHTML;
          }
        })
        .catch(function () {});
    };
    stream.addEventListener("end", function () {
      stream.close();
      var f = document.getElementById("following");
      if (f) f.textContent = "the job has ended";
      setTimeout(refresh, 1000);
      setTimeout(refresh, 4000);
    });
  }
})();
