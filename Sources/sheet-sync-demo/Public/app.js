// The demo page: sign in (the server signs a demo token), list the sheets, press Sync (the typed client event
// sheet:sync:request, whose ack carries the job id; POST /api/sheets/<id>/sync while the socket is not connected),
// then follow the job through the sheet:sync:* events a worker emits to this user's room, user:<id>.
import { SocketIOClient } from "/socketio-client.js";
import { followSyncJobs, requestSync } from "/sync-request.js";

const $ = (selector, root = document) => root.querySelector(selector);
const numbers = new Intl.NumberFormat("en-US");

let session = null; // { user, token, expiresAt, server }
let socket = null;
const cards = new Map(); // sheet id -> card element

// --- sign in / out -----------------------------------------------------------------------------------------------

async function requestToken(user) {
  const response = await fetch("/api/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ?? `token request failed (${response.status})`);
  return { user: body.user, token: body.token, expiresAt: body.expires_at * 1000, server: body.server };
}

// A token that is about to expire is replaced before it is used (on connect and on every reconnect).
async function currentToken() {
  if (Date.now() > session.expiresAt - 60_000) session = await requestToken(session.user);
  sessionStorage.setItem("sheet-sync-session", JSON.stringify(session));
  return session.token;
}

async function signIn(user) {
  session = await requestToken(user);
  sessionStorage.setItem("sheet-sync-session", JSON.stringify(session));
  await showWorkspace();
}

function signOut() {
  socket?.disconnect();
  socket = null;
  session = null;
  sessionStorage.removeItem("sheet-sync-session");
  $("#workspace").hidden = true;
  $("#signin").hidden = false;
}

// --- the workspace -----------------------------------------------------------------------------------------------

async function showWorkspace() {
  $("#signin").hidden = true;
  $("#workspace").hidden = false;
  $("#who").textContent = session.user;
  $("#server-name").textContent = session.server ?? location.host;
  await loadSheets();
  connectSocket();
}

async function loadSheets() {
  const response = await fetch("/api/sheets");
  const sheets = await response.json();
  const container = $("#sheets");
  container.replaceChildren();
  cards.clear();
  for (const sheet of sheets) {
    const card = $("#sheet-template").content.firstElementChild.cloneNode(true);
    card.dataset.sheet = sheet.id;
    $(".sheet-name", card).textContent = sheet.name;
    $(".sheet-meta", card).textContent = `${sheet.id} · ${numbers.format(sheet.rows)} rows`;
    $(".sync", card).addEventListener("click", () => startSync(sheet.id));
    container.append(card);
    cards.set(sheet.id, card);
  }
}

async function startSync(sheetId) {
  const card = cards.get(sheetId);
  setCard(card, { state: "queued", stage: "queued", percent: 0, counts: "", result: null });
  $(".sync", card).disabled = true;
  try {
    const live = socket?.state === "connected";
    const queued = live ? await requestSync(socket, sheetId) : await requestSyncOverHTTP(sheetId);
    card.dataset.job = queued.jobId;
    card.dataset.requestedWith = live ? "sheet:sync:request" : "http";
    // The worker's first event may have come before the answer; it says more than this line.
    if (card.dataset.state === "queued") {
      $(".counts", card).textContent = `job ${queued.jobId.slice(0, 8)} queued by ${queued.queuedBy}`;
    }
    logEvent(live ? "sheet:sync:request" : "POST /sync", `${sheetId}: job ${queued.jobId.slice(0, 8)} queued`);
  } catch (error) {
    setCard(card, { state: "failed", stage: "not queued", percent: 0, counts: "", result: `✗ ${error.message}` });
    $(".sync", card).disabled = false;
  }
}

// The HTTP alternative: the same job, asked for with the token.
async function requestSyncOverHTTP(sheetId) {
  const response = await fetch(`/api/sheets/${encodeURIComponent(sheetId)}/sync`, {
    method: "POST",
    headers: { Authorization: `Bearer ${await currentToken()}` },
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ?? `request failed (${response.status})`);
  return { jobId: body.job_id, queuedBy: body.queued_by };
}

// --- live events -------------------------------------------------------------------------------------------------

function connectSocket() {
  socket?.disconnect();
  socket = new SocketIOClient(location.origin, { auth: async () => ({ token: await currentToken() }) });
  socket.on("status", showConnection);
  let refusals = 0;
  socket.on("connect", () => (refusals = 0));
  socket.on("connect_error", async (error) => {
    logEvent("connect_error", error.message);
    // The token may have expired or the server's secret changed: get a new token and try again, three times.
    refusals += 1;
    if (refusals > 3) return;
    try {
      session = await requestToken(session.user);
      setTimeout(() => socket?.connect(), 1000 * refusals);
    } catch (failure) {
      logEvent("sign-in failed", failure.message);
    }
  });
  socket.on("demo:welcome", (hello) => {
    $("#server-name").textContent = hello.server;
    logEvent("demo:welcome", `connected to ${hello.server} as ${hello.user}`);
  });
  followSyncJobs(socket, {
    started(event) {
      const card = cardFor(event);
      if (!card) return;
      setCard(card, { state: "running", stage: "started", percent: 0, counts: `job ${event.jobId.slice(0, 8)}`, result: null });
      $(".sync", card).disabled = true;
      logEvent("sheet:sync:started", `${event.sheetName} (requested by ${event.requestedBy ?? "schedule"})`);
    },
    progress(event) {
      const card = cardFor(event);
      if (!card) return;
      const total = event.total == null ? "?" : numbers.format(event.total);
      setCard(card, {
        state: "running",
        stage: event.stage,
        percent: event.percent,
        counts: `${numbers.format(event.processed)} / ${total} rows`,
      });
      logEvent("sheet:sync:progress", `${event.sheetId}: ${event.stage} ${event.processed}/${event.total ?? "?"} (${event.percent} %)`);
    },
    completed(event) {
      const card = cardFor(event);
      if (!card) return;
      const warnings = event.warnings.length === 0 ? "no warnings" : `${event.warnings.length} warning${event.warnings.length > 1 ? "s" : ""}`;
      setCard(card, {
        state: "completed",
        stage: "completed",
        percent: 100,
        counts: `${numbers.format(event.rows)} / ${numbers.format(event.rows)} rows`,
        result: `✓ ${numbers.format(event.rows)} rows imported in ${event.duration.toFixed(1)} s, ${warnings}`,
        details: event.warnings.map((w) => `row ${w.row}${w.column ? `, column ${w.column}` : ""}: ${w.message}`),
      });
      card.dataset.rows = event.rows;
      $(".sync", card).disabled = false;
      logEvent("sheet:sync:completed", `${event.sheetId}: ${event.rows} rows, ${event.duration} s`);
    },
    failed(event) {
      const card = cardFor(event);
      if (!card) return;
      setCard(card, {
        state: "failed",
        stage: "failed",
        percent: Number($(".progress", card).getAttribute("aria-valuenow")),
        result: `✗ ${event.code}: ${event.message}${event.retryable ? " (retryable)" : " (not retryable)"}`,
      });
      card.dataset.errorCode = event.code;
      $(".sync", card).disabled = false;
      logEvent("sheet:sync:failed", `${event.sheetId}: ${event.code}`);
    },
  });
  socket.connect();
}

function cardFor(event) {
  const card = cards.get(event.sheetId);
  if (card) card.dataset.job = event.jobId;
  return card;
}

function setCard(card, { state, stage, percent, counts, result, details = [] }) {
  card.dataset.state = state;
  const clamped = Math.max(0, Math.min(100, percent));
  $(".progress", card).setAttribute("aria-valuenow", String(clamped));
  $(".bar", card).style.width = `${clamped}%`;
  $(".stage", card).textContent = stage;
  $(".percent", card).textContent = `${Math.round(clamped)} %`;
  if (counts !== undefined) $(".counts", card).textContent = counts;
  if (result !== undefined) {
    const box = $(".result", card);
    box.hidden = !result;
    box.replaceChildren();
    if (result) {
      box.append(document.createTextNode(result));
      if (details.length) {
        const list = document.createElement("ul");
        for (const line of details) list.append(Object.assign(document.createElement("li"), { textContent: line }));
        box.append(list);
      }
    }
  }
}

const connectionLabels = {
  connecting: "connecting…",
  connected: "live",
  reconnecting: "reconnecting",
  unauthorized: "refused",
  closed: "not connected",
};

function showConnection({ state, detail }) {
  $("#connection").dataset.state = state;
  const label = connectionLabels[state] ?? state;
  $("#connection-text").textContent = state === "reconnecting" && detail ? `${label}: ${detail}` : label;
  $("#connection").title = detail || label;
  if (state !== "connecting") logEvent("connection", detail ? `${state} (${detail})` : state);
}

function logEvent(name, text) {
  const item = document.createElement("li");
  const time = new Date().toLocaleTimeString("en-GB");
  item.innerHTML = `<time></time> <code></code> <span></span>`;
  item.querySelector("time").textContent = time;
  item.querySelector("code").textContent = name;
  item.querySelector("span").textContent = text;
  const log = $("#event-log");
  log.prepend(item);
  while (log.children.length > 40) log.lastElementChild.remove();
}

// For the browser console (and the browser test): window.sheetSync.socket is the live client.
window.sheetSync = {
  get socket() {
    return socket;
  },
};

// --- start -------------------------------------------------------------------------------------------------------

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#signin-error").hidden = true;
  try {
    await signIn($("#user").value.trim());
  } catch (error) {
    $("#signin-error").textContent = error.message;
    $("#signin-error").hidden = false;
  }
});
$("#signout").addEventListener("click", signOut);

const saved = sessionStorage.getItem("sheet-sync-session");
if (saved) {
  session = JSON.parse(saved);
  showWorkspace();
}
