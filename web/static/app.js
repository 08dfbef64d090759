// Bootyard pages: progressive enhancement only. Every form works without this script;
// with it, dialogs open in place, the token is revealed without leaving the page, and
// tables and logs update live over server-sent events.
"use strict";

(function () {
  // Dialogs. An opener is a GET form with data-dialog="<id>" (without script it reloads
  // the page with the dialog drawn open). Hidden inputs with data-prefill="<input id>"
  // copy their value into the dialog's field.
  // A dialog the server drew open (a page reloaded with ?import=1, a form sent back with
  // its errors) was opened by no click this page saw: its opener is then the page's own
  // button for it, not whatever had focus (the body).
  function defaultOpener(dialog) {
    var form = document.querySelector('form[data-dialog="' + dialog.id + '"]');
    return form && form.querySelector("button");
  }
  function openDialog(dialog, opener) {
    if (dialog.open) dialog.close();
    opener = opener || defaultOpener(dialog) || document.activeElement;
    dialog._opener = opener;
    dialog._openerId = opener && opener.id;
    // showModal remembers what has focus and the browser gives it back on close, at once;
    // the close handler below runs a task later, after a script may already look.
    if (opener && opener !== document.activeElement && opener.focus) opener.focus({ preventScroll: true });
    dialog.showModal();
    var first = dialog.querySelector('[aria-invalid="true"]') ||
      dialog.querySelector("input:not([type=hidden]):not([type=radio]):not([disabled]), textarea, select");
    if (first) first.focus();
  }
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var id = form.getAttribute("data-dialog");
    if (!id) return;
    var dialog = document.getElementById(id);
    if (!dialog) return;
    ev.preventDefault();
    form.querySelectorAll("[data-prefill]").forEach(function (src) {
      var dst = document.getElementById(src.getAttribute("data-prefill"));
      if (dst) dst.value = src.value;
    });
    openDialog(dialog, ev.submitter || form.querySelector("button"));
  });
  document.querySelectorAll("dialog").forEach(function (dialog) {
    dialog.addEventListener("close", function () {
      // openDialog closes a server-drawn dialog to reopen it modal; that close event
      // arrives after the reopening and must not take the focus out of it.
      if (dialog.open) return;
      // Give focus back to what opened the dialog, for keyboard users. A live update may
      // have replaced the opener meanwhile (a discovered machine's Import button is in the
      // table the stream redraws): then its replacement, found by id, or the page's own.
      var opener = dialog._opener;
      if (!opener || !document.contains(opener)) {
        opener = (dialog._openerId && document.getElementById(dialog._openerId)) || defaultOpener(dialog);
      }
      if (opener) opener.focus();
    });
    if (dialog.hasAttribute("open")) openDialog(dialog, null);
  });

  // Reveal on click: a CSRF-checked POST whose answer replaces the masked text; a second
  // click masks it again.
  document.querySelectorAll("form[data-reveal]").forEach(function (form) {
    var target = document.getElementById(form.getAttribute("data-reveal"));
    var button = form.querySelector("button");
    if (!target || !button) return;
    var masked = target.textContent, revealed = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (revealed) {
        target.textContent = masked; revealed = false; button.textContent = "Reveal token";
        return;
      }
      fetch(form.action, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { "Accept": "application/json" }
      }).then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.error || r.statusText);
          return body;
        });
      }).then(function (body) {
        target.textContent = body.command || body.token || "";
        revealed = true; button.textContent = "Hide token";
      }).catch(function (err) {
        target.textContent = masked + "\n# could not reveal: " + err.message;
      });
    });
  });

  // Relative ages ("42s", "5m") tick here, against the server's clock, so live updates
  // only need to carry real changes.
  var serverTime = document.querySelector('meta[name="server-time"]');
  var skew = serverTime ? Date.parse(serverTime.content) - Date.now() : 0;
  if (isNaN(skew)) skew = 0;
  function ago(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    if (s < 48 * 3600) return Math.floor(s / 3600) + "h";
    return Math.floor(s / 86400) + "d";
  }
  setInterval(function () {
    var now = Date.now() + skew;
    document.querySelectorAll("time[data-ago]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) return;
      var text = ago(now - t);
      if (el.textContent !== text) el.textContent = text;
    });
  }, 1000);

  if (!window.EventSource) return;

  // Nodes page: the stream sends single rows that changed ("row"), the counts by state,
  // and the page's table only when the set of rows on it changes. Keyboard focus and
  // checked boxes survive a replacement.
  var inventory = document.getElementById("inventory");
  if (inventory && inventory.dataset.stream) {
    var es = new EventSource(inventory.dataset.stream);
    var keep = function (root, fn) {
      var focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement.id : "";
      var checked = {};
      root.querySelectorAll("input[name=names]:checked").forEach(function (b) { checked[b.value] = true; });
      var fresh = fn();
      (fresh || inventory).querySelectorAll("input[name=names]").forEach(function (b) { if (checked[b.value]) b.checked = true; });
      if (focused) { var again = document.getElementById(focused); if (again) again.focus(); }
    };
    es.addEventListener("inventory", function (ev) {
      keep(inventory, function () { inventory.innerHTML = ev.data; return inventory; });
    });
    es.addEventListener("row", function (ev) {
      var tpl = document.createElement("template");
      tpl.innerHTML = "<table><tbody>" + ev.data + "</tbody></table>";
      var row = tpl.content.querySelector("tr");
      var old = row && document.getElementById(row.id);
      if (!old) return;
      keep(old, function () { old.replaceWith(row); return row; });
    });
    var counts = document.getElementById("state-counts");
    es.addEventListener("counts", function (ev) { if (counts) counts.innerHTML = ev.data; });
  }

  // Node page: append events and log lines, refresh the summary.
  var log = document.getElementById("log");
  if (log && log.dataset.stream) {
    var timeline = document.getElementById("timeline");
    var summary = document.getElementById("summary");
    var logEmpty = document.getElementById("log-empty");
    var ns = new EventSource(log.dataset.stream);
    var append = function (list, html) {
      var atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
      list.insertAdjacentHTML("beforeend", html);
      if (atEnd) list.scrollTop = list.scrollHeight;
    };
    ns.addEventListener("log", function (ev) { append(log, ev.data); if (logEmpty) logEmpty.hidden = true; });
    ns.addEventListener("timeline", function (ev) { append(timeline, ev.data); });
    ns.addEventListener("summary", function (ev) { summary.innerHTML = ev.data; });
    ns.addEventListener("gone", function (ev) {
      ns.close();
      summary.insertAdjacentHTML("afterbegin", '<p class="error" role="alert"></p>');
      summary.firstElementChild.textContent = ev.data;
    });
  }
})();
