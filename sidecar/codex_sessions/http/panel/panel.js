// The sessions panel: the list from GET /api/sessions, kept current by GET /api/events.
// The sidecar owns every name, status, list line (headline) and order (rank): this page
// only shows them. It never sees the token: the browser's login cookie does the asking.
"use strict";

const sessions = new Map(); // id -> session object, as the sidecar sent it
const rows = new Map(); // id -> <li>
let showAll = false;
let loaded = false;
let lastEventId = "";
let source = null;
let drawing = false;

const $ = (selector, root = document) => root.querySelector(selector);

// ---- talking to the API ---------------------------------------------------------------

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const answer = await fetch(path, options);
  const kind = answer.headers.get("Content-Type") || "";
  const data = kind.startsWith("application/json") ? await answer.json() : await answer.text();
  if (answer.status === 401) loggedOut();
  if (!answer.ok) throw new Error((data && data.error && data.error.message) || `HTTP ${answer.status}`);
  return data;
}

async function load() {
  const data = await api("GET", "/api/sessions" + (showAll ? "?all=1" : ""));
  sessions.clear();
  for (const s of data.sessions) sessions.set(s.id, s);
  loaded = true;
  draw();
}

function connect() {
  const query = lastEventId ? "?lastEventId=" + encodeURIComponent(lastEventId) : "";
  source = new EventSource("/api/events" + query);
  const take = (name, handle) => source.addEventListener(name, (event) => {
    if (event.lastEventId) lastEventId = event.lastEventId;
    handle(event.data ? JSON.parse(event.data) : null);
  });
  take("ready", () => {
    setLive("live", "live");
    if (!loaded) load().catch(problem); // later connections resume, or get `reset`
  });
  take("changed", (data) => upsert(data.session));
  take("finished", (data) => upsert(data.session));
  take("reset", () => load().catch(problem));
  take("notice", (data) => notice(data.message));
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) {
      setLive("connecting", "reconnecting…"); // EventSource tries again by itself
      return;
    }
    setLive("off", "disconnected");
    source = null;
    // it gave up (the daemon went away, or we are logged out): ask again in a while
    setTimeout(() => api("GET", "/api/sessions?status=waiting").then(connect, () => setTimeout(connect, 3000)), 2000);
  };
}

function upsert(session) {
  const known = sessions.get(session.id);
  if (known && (known.version ?? 0) > (session.version ?? 0)) return; // an older picture
  if (session.status === "stopped" && !showAll) sessions.delete(session.id);
  else sessions.set(session.id, session);
  draw();
}

// ---- drawing ----------------------------------------------------------------------------

function draw() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => {
    drawing = false;
    const list = $("#sessions");
    const ordered = [...sessions.values()].sort((a, b) =>
      a.rank - b.rank || (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0));
    for (const [id, row] of rows) {
      if (!sessions.has(id)) { row.remove(); rows.delete(id); }
    }
    ordered.forEach((s, i) => {
      let row = rows.get(s.id);
      if (!row) {
        row = $("#row").content.firstElementChild.cloneNode(true);
        wire(row, s.id);
        rows.set(s.id, row);
      }
      fill(row, s);
      if (list.children[i] !== row) list.insertBefore(row, list.children[i] || null);
    });
    $("#empty").hidden = sessions.size > 0;
    tick();
  });
}

function fill(row, s) {
  row.dataset.status = s.status;
  row.dataset.id = s.id;
  $(".status", row).textContent = s.status;
  $(".name", row).textContent = s.name;
  $(".project", row).textContent = s.project.name;
  $(".project", row).title = s.project.root;
  $(".headline", row).textContent = s.headline || "";
  const pending = JSON.stringify(s.pending);
  if (row.dataset.pending !== pending) {
    row.dataset.pending = pending;
    const box = $(".pending", row);
    box.replaceChildren(...s.pending.map((request) => requestLine(s.id, request)));
  }
  const turning = s.status === "running" || s.status === "waiting";
  $(".read", row).hidden = !s.report;
  $(".cancel", row).hidden = !turning;
  $(".continue", row).hidden = turning || s.status === "queued" || s.status === "starting";
}

function describe(request) {
  if (request.command) return "run: " + request.command;
  if (request.changes && request.changes.length) return "change: " + request.changes.map((c) => c.path).join(", ");
  return request.reason || request.kind;
}

function requestLine(id, request) {
  const line = $("#request").content.firstElementChild.cloneNode(true);
  $(".what", line).textContent = describe(request);
  if (request.reason) $(".what", line).title = request.reason;
  for (const [selector, decision] of [[".accept", "accept"], [".decline", "decline"]]) {
    $(selector, line).addEventListener("click", (event) => {
      for (const b of line.querySelectorAll("button")) b.disabled = true;
      act(event.target.closest(".session"), "POST",
          `/api/sessions/${id}/requests/${encodeURIComponent(request.requestId)}`, { decision })
        .catch(() => { for (const b of line.querySelectorAll("button")) b.disabled = false; });
    });
  }
  return line;
}

function elapsed(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}h ${two(m)}m` : m ? `${m}m ${two(s)}s` : `${s}s`;
}

function tick() {
  const now = Date.now();
  for (const [id, row] of rows) {
    const s = sessions.get(id);
    const turning = s && (s.status === "running" || s.status === "waiting") && s.turnStartedAt;
    $(".elapsed", row).textContent = turning ? elapsed((now - Date.parse(s.turnStartedAt)) / 1000) : "";
  }
}

// ---- what the buttons do ------------------------------------------------------------------

async function act(row, method, path, body) {
  const problemLine = $(".problem", row);
  problemLine.hidden = true;
  try {
    const data = await api(method, path, body);
    if (data && data.session) upsert(data.session);
    return data;
  } catch (error) {
    problemLine.textContent = error.message;
    problemLine.hidden = false;
    throw error;
  }
}

function wire(row, id) {
  $(".read", row).addEventListener("click", async () => {
    const pre = $(".report", row);
    if (!pre.hidden) {
      pre.hidden = true;
      if (window.speechSynthesis) window.speechSynthesis.cancel();
      return;
    }
    const text = await api("GET", `/api/sessions/${id}/report?format=text`);
    pre.textContent = text;
    pre.hidden = false;
    if (window.speechSynthesis && window.SpeechSynthesisUtterance) {
      window.speechSynthesis.cancel();
      window.speechSynthesis.speak(new SpeechSynthesisUtterance(text));
    }
  });
  $(".continue", row).addEventListener("click", () => {
    const composer = $(".composer", row);
    composer.hidden = !composer.hidden;
    if (!composer.hidden) $("textarea", composer).focus();
  });
  $(".cancel", row).addEventListener("click", () => act(row, "POST", `/api/sessions/${id}/cancel`).catch(() => {}));
  const composer = $(".composer", row);
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const box = $("textarea", composer);
    const text = box.value.trim();
    if (!text) return;
    const send = $("button", composer);
    send.disabled = true;
    act(row, "POST", `/api/sessions/${id}/messages`, { text })
      .then(() => { box.value = ""; composer.hidden = true; $(".report", row).hidden = true; })
      .catch(() => {})
      .finally(() => { send.disabled = false; });
  });
  $("textarea", composer).addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });
}

// ---- the page's own state -----------------------------------------------------------------

function setLive(state, text) {
  const live = $("#live");
  live.dataset.state = state;
  live.textContent = text;
}

function notice(message) {
  const line = $("#notice");
  line.textContent = message;
  line.hidden = false;
}

function problem(error) {
  notice(error.message);
}

function loggedOut() {
  if (source) source.close();
  source = null;
  setLive("off", "logged out");
  notice("This browser is not logged in: run `codex-sessions panel --open` in a terminal.");
}

document.addEventListener("DOMContentLoaded", () => {
  $("#show-all").addEventListener("change", (event) => {
    showAll = event.target.checked;
    load().catch(problem);
  });
  setInterval(tick, 1000);
  connect();
});
