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

  if (body.dataset.page === "job" && body.dataset.stream) {
    var log = document.getElementById("log");
    var stream = new EventSource(body.dataset.stream);
    var stuck = function () { return log.scrollHeight - log.scrollTop - log.clientHeight < 40; };
    log.scrollTop = log.scrollHeight;
    // The server sends lines as HTML it has escaped and coloured itself.
    stream.addEventListener("line", function (e) {
      var follow = stuck();
      var div = document.createElement("div");
      div.className = "l";
      div.innerHTML = e.data;
      log.appendChild(div);
      while (log.childElementCount > MAX_LINES) log.removeChild(log.firstElementChild);
      if (follow) log.scrollTop = log.scrollHeight;
    });
    stream.addEventListener("summary", function (e) {
      document.getElementById("summary").innerHTML = e.data;
    });
    stream.addEventListener("end", function () {
      stream.close();
      var f = document.getElementById("following");
      if (f) f.textContent = "the job has ended";
    });
  }
})();
