// umbra admin UI: live refresh, API actions, the route form, noise toggle, copy as curl.
// No dependencies; served from /ui/app.js (the CSP allows no inline script).
(function () {
  "use strict";

  // Every API call carries the CSRF header (cookie auth needs it) and tags the source; every
  // change is JSON, body or not (the admin refuses other content types on changes).
  // A failed call rejects with an Error that has the HTTP status and the API's message.
  function api(method, url, body) {
    var opts = {
      method: method,
      credentials: "same-origin",
      headers: { "X-Umbra-CSRF": "1", "X-Umbra-Source": "ui", "Accept": "application/json" }
    };
    if (method !== "GET" && method !== "HEAD") {
      opts.headers["Content-Type"] = "application/json";
    }
    if (body !== undefined) {
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.text().then(function (t) {
        var v = null;
        try { v = t ? JSON.parse(t) : null; } catch (e) { v = null; }
        if (!r.ok) {
          var err = new Error((v && v.message) || ("HTTP " + r.status));
          err.status = r.status;
          throw err;
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

  // ---- overview: poll /api/routes and /api/services every 2 s, update in place ----

  var lastCounts = {}; // route -> {requests, at}

  function stateOf(s) {
    if (!s.healthy) { return ["down", "unhealthy"]; }
    if (s.ejected) { return ["ejected", "ejected"]; }
    return ["up", "healthy"];
  }

  function updateRoutes(table, routes, now) {
    var byName = {};
    routes.forEach(function (r) { byName[r.name] = r.stats || {}; });
    table.querySelectorAll("tr[data-route]").forEach(function (tr) {
      var name = tr.dataset.route, s = byName[name];
      if (!s) { return; }
      var prev = lastCounts[name], rps = null;
      if (prev && now > prev.at) {
        rps = Math.max(0, (s.requests - prev.requests) * 1000 / (now - prev.at));
      }
      lastCounts[name] = { requests: s.requests || 0, at: now };
      tr.querySelectorAll("[data-stat]").forEach(function (td) {
        var k = td.dataset.stat, val = s[k], text;
        if (k === "rps") {
          if (rps === null) { return; }
          text = rps.toFixed(1);
        } else if (k === "requests") { text = String(val === undefined ? 0 : val); }
        else if (k.slice(-5) === "_rate") { text = pct(val); }
        else { text = ms(val); }
        if (td.textContent !== text) { td.textContent = text; }
      });
    });
  }

  function updateServers(services) {
    services.forEach(function (svc) {
      var available = 0;
      (svc.servers || []).forEach(function (s) {
        var st = stateOf(s);
        if (s.available) { available += 1; }
        document.querySelectorAll(".dot[data-server]").forEach(function (dot) {
          if (dot.dataset.service !== svc.name || dot.dataset.server !== s.url) { return; }
          dot.className = "dot " + st[0];
          var label = s.url + " " + st[1];
          dot.setAttribute("aria-label", label);
          dot.setAttribute("title", label);
        });
        document.querySelectorAll(".state[data-server]").forEach(function (el) {
          if (el.dataset.service === svc.name && el.dataset.server === s.url) {
            el.textContent = st[1];
          }
        });
      });
      document.querySelectorAll("[data-available]").forEach(function (el) {
        if (el.dataset.available === svc.name) {
          el.textContent = available + "/" + (svc.servers || []).length;
        }
      });
    });
  }

  function refresh() {
    var table = document.getElementById("routes");
    var live = document.getElementById("live");
    Promise.all([api("GET", "/api/routes"), api("GET", "/api/services")]).then(function (v) {
      updateRoutes(table, v[0].routes || [], Date.now());
      updateServers(v[1].services || []);
      if (live) { live.textContent = "live · updated " + new Date().toLocaleTimeString(); }
    }).catch(function (e) {
      if (live) { live.textContent = "live refresh failed: " + e.message; }
    });
  }

  // ---- actions: buttons and small forms that call the API, then reload ----

  function formBody(form) {
    var body = {}, any = false;
    form.querySelectorAll("input[name], select[name]").forEach(function (el) {
      if (el.value === "") { return; }
      body[el.name] = el.type === "number" ? Number(el.value) : el.value;
      any = true;
    });
    return any ? body : undefined;
  }

  function act(method, url, body, question, then) {
    if (question && !window.confirm(question)) { return; }
    api(method, url, body).then(function () {
      if (then) { window.location.assign(then); } else { window.location.reload(); }
    }).catch(function (e) { flash(e.message, false); });
  }

  // ---- the route form: PUT /api/routes/{name}; 422 messages go next to their field ----

  function clearErrors(form) {
    form.querySelectorAll(".field-error, .form-error").forEach(function (el) { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  // The field a message is about: "rule: ...", "shadow.percent: ...", or serde's
  // "request body: missing field `service` ...".
  function fieldOf(form, message) {
    var m = /^([a-z_]+(?:\.[a-z_]+)*): /.exec(message);
    var key = m ? m[1] : null;
    var f = /field `([a-z_]+)`/.exec(message);
    if ((!key || key === "request body") && f) { key = f[1]; }
    while (key) {
      var el = form.querySelector('[data-key="' + key + '"]');
      if (el) { return el; }
      var dot = key.lastIndexOf(".");
      key = dot > 0 ? key.slice(0, dot) : null;
    }
    if (m && m[1] === "shadow") { return form.querySelector('[data-key="shadow.service"]'); }
    return null;
  }

  // `key` names the field when the status already says which (409: the name is taken).
  function showError(form, message, key) {
    var input = key ? form.querySelector('[data-key="' + key + '"]') : fieldOf(form, message);
    var slot = input ? document.getElementById(input.id + "-error") : null;
    if (!slot) { slot = form.querySelector(".form-error"); }
    slot.textContent = slot.textContent ? slot.textContent + " " + message : message;
    if (input) { input.setAttribute("aria-invalid", "true"); }
    return input;
  }

  function routeBody(form) {
    var current = {};
    try { current = form.dataset.current ? JSON.parse(form.dataset.current) : {}; } catch (e) { current = {}; }
    var body = current;
    delete body.name;
    var val = function (key) { return form.querySelector('[data-key="' + key + '"]').value.trim(); };
    body.rule = val("rule");
    body.service = val("service");
    ["strip_prefix", "priority"].forEach(function (k) {
      var v = val(k);
      if (v === "") { delete body[k]; } else { body[k] = k === "priority" ? Number(v) : v; }
    });
    var shadow = val("shadow.service"), percent = val("shadow.percent");
    if (shadow === "") {
      delete body.shadow;
    } else {
      var s = body.shadow && body.shadow.service === shadow ? body.shadow : { service: shadow };
      if (percent === "") { delete s.percent; } else { s.percent = Number(percent); }
      body.shadow = s;
    }
    return body;
  }

  // A service field holding a server URL: the service it makes, named after the route.
  var URL_SERVICES = [["service", "primary"], ["shadow.service", "shadow"]];

  // Makes the services the form's URLs stand for, one after another; each failure names
  // its field. Resolves with the body, its URLs replaced by the services' names.
  function makeServices(form, name, body) {
    var chain = Promise.resolve();
    URL_SERVICES.forEach(function (pair) {
      var key = pair[0], holder = key === "service" ? body : body.shadow;
      var url = holder ? holder.service : "";
      if (!url || url.indexOf("://") < 0) { return; }
      var svc = name + "-" + pair[1];
      chain = chain.then(function () {
        return api("PUT", "/api/services/" + encodeURIComponent(svc), { servers: [url] });
      }).then(function () {
        holder.service = svc;
      }, function (e) {
        e.key = key;
        throw e;
      });
    });
    return chain.then(function () { return body; });
  }

  function submitRoute(form) {
    clearErrors(form);
    var name = form.querySelector('[data-key="name"]').value.trim();
    if (name === "") {
      showError(form, "name: is required").focus();
      return;
    }
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    makeServices(form, name, routeBody(form)).then(function (body) {
      return api("PUT", "/api/routes/" + encodeURIComponent(name), body);
    }).then(function () {
      window.location.assign("/ui/routes/" + encodeURIComponent(name));
    }).catch(function (e) {
      button.disabled = false;
      var first = null;
      if (e.key) {
        first = showError(form, e.message, e.key);
      } else if (e.status === 422) {
        e.message.split("; ").forEach(function (part) {
          var input = showError(form, part);
          if (!first) { first = input; }
        });
      } else {
        first = showError(form, e.message, e.status === 409 ? "name" : null);
      }
      if (first) { first.focus(); }
    });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList) { return; }
    if (form.classList.contains("route-form")) {
      ev.preventDefault();
      submitRoute(form);
    } else if (form.classList.contains("api")) {
      ev.preventDefault();
      act(form.dataset.method, form.dataset.url, formBody(form), form.dataset.confirm);
    }
  });

  document.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest("button") : null;
    if (!el) { return; }
    if (el.classList.contains("api-button")) {
      ev.preventDefault();
      var body = el.dataset.path !== undefined ? { path: el.dataset.path } : undefined;
      act(el.dataset.method, el.dataset.url, body, el.dataset.confirm, el.dataset.then);
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
      refresh();
      setInterval(refresh, 2000);
    }
  });
})();
