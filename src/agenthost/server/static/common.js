// Shared by the playground and the dashboard: DOM helpers, the credential kept in the
// tab's sessionStorage, and a small client of the public HTTP API (JSON and SSE).
// Nothing here ever assigns HTML: text goes in with textContent, so server data cannot
// become markup.

export const $ = (selector, root = document) => root.querySelector(selector);

/** el("button", {class: "x", onclick: f, title: "t"}, "text", child) */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---- the credential (an API key or a JWT): this tab only, never in a URL -------------

const CREDENTIAL = "agenthost.credential";

export const credentials = {
  get(scope = "") { return sessionStorage.getItem(scope ? `${CREDENTIAL}.${scope}` : CREDENTIAL) || ""; },
  set(value, scope = "") {
    const name = scope ? `${CREDENTIAL}.${scope}` : CREDENTIAL;
    if (value) sessionStorage.setItem(name, value); else sessionStorage.removeItem(name);
  },
};

/** What a JWT says about its holder (unverified, for display only); null for an API key. */
export function describeToken(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const text = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(decodeURIComponent(escape(text)));
    return typeof claims === "object" && claims ? claims : null;
  } catch { return null; }
}

// ---- ids in headers ---------------------------------------------------------------------

/** A header value for an id: ASCII as it is, anything else in the server's documented
 * percent form (UTF-8'' then the percent-encoded UTF-8: "UTF-8''Jos%C3%A9"), which stays
 * ASCII through any proxy. Ids travel best in JSON bodies: the console uses headers only
 * where a route has no body. */
export function headerId(id) {
  const plain = /^[\x20-\x7e]*$/.test(id) && id === id.trim() && !/^utf-8''/i.test(id);
  return plain ? id : `UTF-8''${encodeURIComponent(id)}`;
}

export const pathId = (id) => encodeURIComponent(id);

// ---- the API client ---------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  /** One line a person can act on. */
  describe() {
    if (this.status === 0) return this.message;
    if (this.status === 401) return `The server refused the credential: ${this.message}. Paste a valid API key or token (Credential button).`;
    if (this.status === 403) return `Not allowed for this credential: ${this.message}.`;
    return `${this.message} (${this.status} ${this.code})`;
  }
}

const UNREACHABLE = () =>
  new ApiError(0, "unreachable", `Cannot reach the server at ${location.origin}: is agenthost serve running? Nothing was sent.`);

async function errorOf(response) {
  let code = `http_${response.status}`, message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, code, message);
}

export class Api {
  /** credential(): the bearer token or ""; user(): the user to act for or "". */
  constructor({ credential = () => credentials.get(), user = () => "" } = {}) {
    this.credential = credential;
    this.user = user;
  }

  /** userHeader: false when the body names the user (ids travel best in JSON). */
  headers(extra = {}, userHeader = true) {
    const headers = { Accept: "application/json", ...extra };
    const token = this.credential();
    if (token) headers.Authorization = `Bearer ${token}`;
    const user = this.user();
    if (user && userHeader) headers["X-User-Id"] = headerId(user);
    return headers;
  }

  async fetch(method, path, { body, signal, accept, userHeader = true, headers: extra = {} } = {}) {
    const headers = this.headers({ ...(accept ? { Accept: accept } : {}), ...extra }, userHeader);
    const init = { method, signal, headers, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === "AbortError") throw new ApiError(0, "aborted", "Stopped.");
      throw UNREACHABLE();
    }
    notifyReachable(true);
    if (!response.ok) {
      const error = await errorOf(response);
      if (error.status === 401) window.dispatchEvent(new CustomEvent("agenthost:unauthorized", { detail: error }));
      throw error;
    }
    return response;
  }

  async json(method, path, options = {}) {
    const response = await this.fetch(method, path, options);
    try { return await response.json(); } catch { throw new ApiError(response.status, "bad_reply", "The server sent a reply that is not JSON."); }
  }

  get(path, options) { return this.json("GET", path, options); }

  /** POST with Server-Sent Events; onEvent(type, data) per event. Resolves with the last event.
   *  A connection lost mid-turn is resumed from v1/runs/{id}/events after the last event id
   *  (onRun(id) learns the run's id as soon as the server names it). */
  async stream(path, body, onEvent, { signal, userHeader = true, onRun } = {}) {
    const options = { body: { ...body, stream: true }, signal, accept: "text/event-stream", userHeader };
    let response = await this.fetch("POST", path, options);
    const runId = response.headers.get("X-Agenthost-Run-Id");
    if (runId && onRun) onRun(runId);
    const seen = { id: 0, last: null };
    for (let attempt = 1; ; attempt++) {
      try {
        await readEvents(response, seen, onEvent);
        if (seen.last && (seen.last.type === "done" || seen.last.type === "error")) return seen.last;
        if (!runId) throw new ApiError(0, "connection_lost", "The connection closed before the turn finished.");
      } catch (error) {
        if (error.code === "aborted" || !runId || attempt > 5) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** attempt, 4000)));
      try {
        const headers = { "Last-Event-ID": String(seen.id) };
        response = await this.fetch("GET", `v1/runs/${pathId(runId)}/events`, { signal, accept: "text/event-stream", headers });
      } catch (error) {
        if (error.code === "aborted" || error.status || attempt > 5) throw error;
        response = null; // unreachable for now: try again
      }
    }
  }
}

/** Read one SSE response into onEvent; seen.id and seen.last follow what arrived. */
async function readEvents(response, seen, onEvent) {
  if (!response) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const handle = (frame) => {
    let type = "message", id = null;
    const data = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("id:")) id = Number(line.slice(3).trim());
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length) return;
    let parsed;
    try { parsed = JSON.parse(data.join("\n")); } catch { return; }
    if (Number.isInteger(id)) seen.id = id;
    seen.last = { type, data: parsed };
    onEvent(type, parsed);
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        handle(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  } catch (error) {
    if (error.name === "AbortError") throw new ApiError(0, "aborted", "Stopped: the turn is marked interrupted.");
    throw new ApiError(0, "connection_lost", "The connection to the server was lost before the turn finished.");
  }
  if (buffer.trim()) handle(buffer);
}

// ---- the top bar: connection state, credential dialog, one banner -----------------------

const reachability = new Set();
export function onReachability(listener) { reachability.add(listener); }
export function notifyReachable(ok) { for (const listener of reachability) listener(ok); }

/** Wire the shared top bar of a page. Returns {showBanner, clearBanner}. */
export function setUpTopBar({ onCredentialChange } = {}) {
  const banner = $("#banner"), bannerText = $("#banner-text"), conn = $("#conn");
  const dialog = $("#credential-dialog"), input = $("#credential-input"), who = $("#who");

  const showBanner = (text) => { bannerText.textContent = text; banner.hidden = false; };
  const clearBanner = () => { banner.hidden = true; bannerText.textContent = ""; };

  const describe = () => {
    const token = credentials.get();
    if (!token) { who.textContent = "no credential"; return; }
    const claims = describeToken(token);
    if (claims && claims.sub) {
      const scope = [claims.scope, claims.scp].flat().filter(Boolean).join(" ");
      who.textContent = `token: ${claims.sub}${claims.tenant ? ` @ ${claims.tenant}` : ""}${/\badmin\b/.test(scope) ? " (admin)" : ""}`;
    } else {
      who.textContent = `key …${token.slice(-4)}`;
    }
  };
  describe();

  onReachability((ok) => {
    conn.dataset.state = ok ? "ok" : "down";
    conn.textContent = ok ? "connected" : "server unreachable";
  });

  const open = (reason) => {
    $("#credential-reason").textContent = reason || "";
    input.value = "";
    if (!dialog.open) dialog.showModal();
    input.focus();
  };
  $("#credential-button").addEventListener("click", () => open(""));
  $("#banner-credential").addEventListener("click", () => open(""));
  $("#credential-forget").addEventListener("click", () => {
    credentials.set("");
    dialog.close();
    describe();
    onCredentialChange?.();
  });
  $("#credential-cancel").addEventListener("click", () => dialog.close());
  $("#credential-form").addEventListener("submit", (event) => {
    event.preventDefault();
    credentials.set(input.value.trim());
    input.value = "";
    dialog.close();
    clearBanner();
    describe();
    onCredentialChange?.();
  });
  window.addEventListener("agenthost:unauthorized", (event) => {
    const error = event.detail;
    const text = credentials.get()
      ? `The server refused the credential: ${error.message}.`
      : `This server needs an API key or a token: ${error.message}.`;
    showBanner(text);
  });
  return { showBanner, clearBanner, openCredential: open };
}

/** Re-check /healthz; the connection indicator follows. */
export async function checkHealth() {
  try {
    const response = await fetch("healthz", { cache: "no-store" });
    notifyReachable(response.ok);
    return response.ok;
  } catch {
    notifyReachable(false);
    return false;
  }
}

export function formatTime(seconds) {
  if (!seconds) return "";
  const date = new Date(seconds * 1000);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

export function formatAge(seconds, now = Date.now() / 1000) {
  const age = Math.max(0, now - seconds);
  if (age < 60) return `${Math.round(age)} s`;
  if (age < 3600) return `${Math.round(age / 60)} min`;
  return `${(age / 3600).toFixed(1)} h`;
}
