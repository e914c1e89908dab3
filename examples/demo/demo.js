/*
 * sse-fcgi demo: a doctor's live queue board and an appointment status page,
 * updated through EventSource. Plain script, no build step, no libraries.
 *
 * The first function is the part a site copies; the rest draws the page.
 */
"use strict";

/*
 * An EventSource that also comes back when the browser gives up.
 *
 * EventSource reconnects by itself when a stream ends or drops: readyState
 * goes CONNECTING, then OPEN again, after the `retry:` delay the server sent
 * (sse-fcgi spreads it out when it shuts down). But on any answer that is not
 * a 200 text/event-stream it gives up for good (readyState CLOSED): a 429 when
 * the resource already has max_streams_per_resource streams, a 503 when the
 * process is full, a 502 from nginx while the backend is down or restarting.
 * Only a new EventSource helps then. Wait a random delay that doubles with
 * each failure, capped, so that a crowd of browsers does not return at once.
 *
 * Resume: every event carries an id. The browser sends the last one back as
 * Last-Event-ID on its own reconnects, and sse-fcgi replays what was missed.
 * A new EventSource starts without it, so the last id goes into its URL as
 * ?last_event_id= (the header wins when both are there). When the missed
 * events cannot be replayed (too old, the server restarted), the stream
 * starts with one `reset` event instead: listen for it and reload the state
 * the page shows (here: say so; a real page would fetch its data again).
 *
 *   url        the stream, e.g. "/sse/doctor-123"
 *   listeners  { eventName: function (MessageEvent) } ("message" = unnamed)
 *   onState    function (state, eventSource, delayMs): "connecting", "open",
 *              or "closed" (a new EventSource follows in delayMs)
 * Returns { close() } to stop for good.
 */
function liveEventSource(url, listeners, onState) {
  var es = null, failures = 0, timer = null, lastId = "";

  function remember(ev) {
    if (ev.lastEventId) lastId = ev.lastEventId;
  }

  function connect() {
    timer = null;
    es = new EventSource(lastId ? url + (url.indexOf("?") < 0 ? "?" : "&") +
                         "last_event_id=" + encodeURIComponent(lastId) : url);
    Object.keys(listeners).forEach(function (name) {
      es.addEventListener(name, remember);
      es.addEventListener(name, listeners[name]);
    });
    es.onopen = function () {
      failures = 0;
      onState("open", es);
    };
    es.onerror = function () {
      if (es.readyState !== EventSource.CLOSED) {
        onState("connecting", es);      // the browser retries by itself
        return;
      }
      var cap = Math.min(30000, 1000 * Math.pow(2, failures++));
      var delay = Math.round(cap / 2 + Math.random() * cap / 2);
      onState("closed", es, delay);
      timer = setTimeout(connect, delay);
    };
    onState("connecting", es);
  }

  connect();
  return {
    close: function () {
      clearTimeout(timer);
      es.close();
    }
  };
}

/* ------------------------------------------------------------------ page */

(function () {
  var RESOURCE = /^[A-Za-z0-9._:-]{1,128}$/;
  var params = new URLSearchParams(location.search);
  function resource(name, fallback) {
    var v = params.get(name);
    return v && RESOURCE.test(v) ? v : fallback;
  }
  var doctor = resource("doctor", "doctor-123");
  var appointment = resource("appointment", "appointment-42");

  // What the page saw, for people in the console and for the browser test.
  var demo = window.sseDemo = { streams: {}, transitions: [], received: 0, tokens: false };

  function $(id) { return document.getElementById(id); }
  function show(id, value) {
    var el = $(id);
    if (value === undefined || value === null) return;
    el.textContent = String(value);
    el.classList.remove("flash");
    void el.offsetWidth;                // restart the highlight
    el.classList.add("flash");
  }
  function minutes(v) { return typeof v === "number" ? v + " min" : v; }

  var STATUS_TEXT = {
    SCHEDULED: "Scheduled", CHECKED_IN: "Checked in", WAITING: "Waiting",
    IN_CONSULTATION: "In consultation", COMPLETED: "Completed", CANCELLED: "Cancelled"
  };

  function onDoctor(d) {
    show("now-serving", d.nowServing);
    show("waiting", d.waiting !== undefined ? d.waiting : d.queueLength);
    show("estimated-wait", minutes(d.estimatedWait));
  }
  function onAppointment(d) {
    if (d.status !== undefined) {
      show("appt-status", STATUS_TEXT[d.status] || d.status);
      $("appt-status").setAttribute("data-status", d.status);
    }
    show("appt-position", d.queuePosition);
    show("appt-wait", minutes(d.estimatedWait));
  }

  function logLine(res, type, text) {
    var li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + "  " + res + "  " + type + "  " + text;
    var log = $("log");
    log.insertBefore(li, log.firstChild);
    while (log.children.length > 50) log.removeChild(log.lastChild);
  }

  /*
   * With stream tokens (run-demo.sh --tokens) a refusal is 401 or 403, which
   * EventSource cannot see: it only gives up. Ask once with fetch() what the
   * answer was (aborting at once if it is a stream after all), so that the page
   * says so and stops retrying what will never be allowed.
   */
  function refusal(url, done) {
    var ctl = new AbortController();
    fetch(url, { signal: ctl.signal, credentials: "same-origin" }).then(function (r) {
      if (r.status !== 401 && r.status !== 403) {
        ctl.abort();
        return done(null);
      }
      return r.json().then(function (body) {
        done({ status: r.status, reason: body.error || "" });
      }, function () { done({ status: r.status, reason: "" }); });
    }, function () { done(null); });
  }

  function follow(key, res, apply) {
    var st = demo.streams[key] = {
      resource: res, url: "/sse/" + encodeURIComponent(res), state: "CONNECTING",
      instances: 0, opens: 0, gaveUp: 0, events: 0, last: null, refused: null, resets: [], seen: []
    };
    var conn = $(key + "-conn");
    var current = null, handle = null;

    function onMessage(ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { data = null; }
      st.events++;
      demo.received++;
      st.last = { type: ev.type, data: ev.data, id: ev.lastEventId };
      st.seen.push(ev.data);
      if (st.seen.length > 200) st.seen.shift();
      logLine(res, ev.type, ev.data);
      if (data && typeof data === "object") apply(data);
    }

    // The missed events could not be replayed: the shown values may be stale
    // until the next update. Say so where the user looks.
    function onReset(ev) {
      var why;
      try { why = JSON.parse(ev.data).reason; } catch (e) { why = "unknown"; }
      st.resets.push(why);
      logLine(res, "reset", ev.data);
      var note = $(key + "-reset");
      note.textContent = "Some updates were missed (" + why + "): showing the next ones as they come.";
      note.hidden = false;
    }

    function onState(state, es, delay) {
      if (es !== current) {             // a new EventSource
        current = es;
        st.instances++;
      }
      st.state = state.toUpperCase();
      demo.transitions.push(key + "#" + st.instances + " " + st.state);
      conn.className = "conn " + state;
      if (state === "open") {
        st.opens++;
        conn.textContent = "live (" + st.url + ")";
      } else if (state === "connecting") {
        conn.textContent = "reconnecting…";
      } else {
        st.gaveUp++;
        conn.textContent = "server unavailable; new connection in " +
          (delay / 1000).toFixed(1) + " s";
        if (demo.tokens) {
          refusal(st.url, function (r) {
            if (!r) return;
            handle.close();             // a token will not change by retrying
            st.refused = r;
            st.state = "REFUSED";
            demo.transitions.push(key + "#" + st.instances + " REFUSED");
            conn.className = "conn closed";
            conn.textContent = "not allowed (" + r.status + ": " + r.reason + ")";
          });
        }
      }
    }

    handle = liveEventSource(st.url, {
      message: onMessage,               // publishes without ?event=
      queue_update: onMessage,
      status_change: onMessage,
      reset: onReset
    }, onState);
  }

  document.querySelector('[data-resource="doctor"]').textContent = doctor;
  document.querySelector('[data-resource="appointment"]').textContent = appointment;
  function showCurl(auth) {
    $("curl-doctor").textContent =
      "curl -X POST '" + location.origin + "/publish/" + doctor + "?event=queue_update' " + auth +
      "-d '{\"type\":\"queue_update\",\"nowServing\":\"A-17\",\"waiting\":4,\"estimatedWait\":12}'";
    $("curl-appointment").textContent =
      "curl -X POST '" + location.origin + "/publish/" + appointment + "?event=status_change' " + auth +
      "-d '{\"type\":\"status_change\",\"status\":\"IN_CONSULTATION\"}'";
  }

  function start() {
    follow("doctor", doctor, onDoctor);
    follow("appointment", appointment, onAppointment);
  }

  // run-demo.sh --tokens serves this patient's token at /demo-token (a real
  // site sets the cookie from its server, HttpOnly); without it the streams
  // are open. The cookie goes only to /sse/.
  showCurl("");
  fetch("/demo-token", { credentials: "same-origin" }).then(function (r) {
    return r.ok ? r.text() : null;
  }).then(function (token) {
    if (token && /^[A-Za-z0-9_.-]+$/.test(token.trim())) {
      document.cookie = "sse_token=" + token.trim() + "; path=/sse/; SameSite=Strict";
      demo.tokens = true;
      showCurl("-H 'Authorization: Bearer <the publish token run-demo.sh printed>' ");
    }
  }, function () {}).then(start);
})();
