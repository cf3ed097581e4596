// umbra admin UI: live refresh, API actions, noise toggle, copy as curl. No dependencies.
(function () {
  "use strict";

  // Every API call carries the CSRF header (cookie auth needs it) and tags the source.
  function api(method, url, body) {
    var opts = {
      method: method,
      credentials: "same-origin",
      headers: { "X-Umbra-CSRF": "1", "X-Umbra-Source": "ui", "Accept": "application/json" }
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.text().then(function (t) {
        var v = null;
        try { v = t ? JSON.parse(t) : null; } catch (e) { v = null; }
        if (!r.ok) {
          throw new Error((v && v.message) || ("HTTP " + r.status));
        }
        return v;
      });
    });
  }

  function flash(msg, ok) {
    var el = document.getElementById("flash");
    if (!el) { return; }
    el.textContent = msg;
    el.classList.remove("hidden");
    el.classList.toggle("ok", !!ok);
  }

  function pct(v) { return typeof v === "number" ? (v * 100).toFixed(1) + "%" : "—"; }
  function ms(v) { return typeof v === "number" ? v.toFixed(1) + " ms" : "—"; }

  // Overview: poll /api/routes every 2 s and update the numbers in place.
  function refreshRoutes() {
    var table = document.getElementById("routes");
    if (!table) { return; }
    var live = document.getElementById("live");
    api("GET", "/api/routes").then(function (v) {
      var byName = {};
      (v.routes || []).forEach(function (r) { byName[r.name] = r.stats || {}; });
      table.querySelectorAll("tr[data-route]").forEach(function (tr) {
        var s = byName[tr.dataset.route];
        if (!s) { return; }
        tr.querySelectorAll("[data-stat]").forEach(function (td) {
          var k = td.dataset.stat, val = s[k], text;
          if (k === "requests") { text = String(val === undefined ? 0 : val); }
          else if (k.slice(-5) === "_rate") { text = pct(val); }
          else { text = ms(val); }
          if (td.textContent !== text) { td.textContent = text; }
        });
      });
      if (live) { live.textContent = "live · updated " + new Date().toLocaleTimeString(); }
    }).catch(function (e) {
      if (live) { live.textContent = "live refresh failed: " + e.message; }
    });
  }

  function formBody(form) {
    var body = {}, any = false;
    form.querySelectorAll("input[name], select[name]").forEach(function (el) {
      if (el.value === "") { return; }
      body[el.name] = el.type === "number" ? Number(el.value) : el.value;
      any = true;
    });
    return any ? body : undefined;
  }

  function act(method, url, body, question) {
    if (question && !window.confirm(question)) { return; }
    api(method, url, body).then(function () {
      window.location.reload();
    }).catch(function (e) { flash(e.message, false); });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("api")) { return; }
    ev.preventDefault();
    act(form.dataset.method, form.dataset.url, formBody(form), form.dataset.confirm);
  });

  document.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest("button") : null;
    if (!el) { return; }
    if (el.classList.contains("api-button")) {
      ev.preventDefault();
      var body = el.dataset.path !== undefined ? { path: el.dataset.path } : undefined;
      act(el.dataset.method, el.dataset.url, body, el.dataset.confirm);
    } else if (el.classList.contains("copy") && el.dataset.curl) {
      copy(el.dataset.curl).then(function () {
        el.textContent = "copied";
        setTimeout(function () { el.textContent = "copy as curl"; }, 1500);
      }, function () { flash("could not copy; the command is: " + el.dataset.curl, false); });
    }
  });

  function copy(text) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (ok, fail) {
      var ta = document.createElement("textarea");
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      var done = document.execCommand("copy");
      document.body.removeChild(ta);
      if (done) { ok(); } else { fail(); }
    });
  }

  document.addEventListener("change", function (ev) {
    if (ev.target.id !== "hide-noise") { return; }
    var hide = ev.target.checked;
    document.querySelectorAll("tr.field.noise").forEach(function (tr) {
      tr.classList.toggle("hidden", hide);
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (document.getElementById("routes")) {
      refreshRoutes();
      setInterval(refreshRoutes, 2000);
    }
  });
})();
