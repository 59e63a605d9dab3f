// The playground: one or two panes, each a user with their sessions, a streaming
// conversation and a session panel. Only the public HTTP API is used.

import { $, el, Api, ApiError, credentials, setUpTopBar, checkHealth, formatTime, pathId, notifyReachable } from "./common.js";
import { Turn, renderHistory } from "./turns.js";

const PAGE = 20;
const HISTORY = 200;
const DEFAULT_USERS = ["alice", "bob"];
const MAX_ID = 255;

const server = { config: null, agents: [] };

function idProblem(id) {
  if (id.length > MAX_ID) return `at most ${MAX_ID} characters`;
  if (/[\x00-\x1f\x7f-\x9f]/.test(id)) return "no control characters";
  return null;
}

class Pane {
  constructor(index) {
    this.index = index;
    this.root = $("#pane-template").content.firstElementChild.cloneNode(true);
    this.root.dataset.pane = String(index);
    const stored = sessionStorage.getItem(this.key("user"));
    this.user = stored ?? (server.config && server.config.auth === "none" ? DEFAULT_USERS[index] : "");
    this.sessionId = null;
    this.offset = 0;
    this.busy = false;
    this.waiting = false;
    this.controller = null;
    this.record = null;
    this.agent = "";
    this.historyLimit = HISTORY;
    this.stick = true;
    this.api = new Api({
      credential: () => this.q(".pane-credential").value.trim() || credentials.get(),
      user: () => this.user,
    });
    this.wire();
  }

  key(name) { return `agenthost.pane.${this.index}.${name}`; }
  q(selector) { return this.root.querySelector(selector); }

  wire() {
    const user = this.q(".user");
    user.value = this.user;
    user.placeholder = server.config && server.config.auth !== "none" ? "(the credential's user)" : "default";
    const commit = () => this.setUser(user.value.trim());
    user.addEventListener("change", commit);
    user.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); commit(); } });

    const paneCredential = this.q(".pane-credential");
    paneCredential.value = credentials.get(`pane${this.index}`);
    this.q(".pane-credential-form").addEventListener("submit", (event) => event.preventDefault());
    paneCredential.addEventListener("change", () => {
      credentials.set(paneCredential.value.trim(), `pane${this.index}`);
      this.reset();
    });

    const log = this.q(".log");
    log.addEventListener("scroll", () => { this.stick = log.scrollHeight - log.scrollTop - log.clientHeight < 48; });

    const composer = this.q(".composer");
    const message = this.q(".message");
    composer.addEventListener("submit", (event) => { event.preventDefault(); this.send(); });
    message.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); this.send(); }
    });
    this.root.addEventListener("keydown", (event) => { if (event.key === "Escape" && this.busy) this.stop(); });
    this.q(".stop").addEventListener("click", () => this.stop());

    this.q("form.new").addEventListener("submit", (event) => { event.preventDefault(); this.createSession(); });
    this.q(".newer").addEventListener("click", () => { this.offset = Math.max(0, this.offset - PAGE); this.loadSessions(); });
    this.q(".older").addEventListener("click", () => { this.offset += PAGE; this.loadSessions(); });

    const toggle = (button, panel, onShow) => {
      button.addEventListener("click", () => {
        const show = panel.hidden;
        panel.hidden = !show;
        button.setAttribute("aria-pressed", String(show));
        if (show) onShow?.();
      });
    };
    toggle(this.q(".toggle-sessions"), this.q(".sessions-side"));
    toggle(this.q(".toggle-details"), this.q(".details"), () => this.refreshDetails());
    this.q(".apply-state").addEventListener("click", () => this.applyState());
    this.q(".apply-config").addEventListener("click", () => this.applyConfig());
  }

  /** Compact layout when two panes share the screen: the session list starts folded. */
  compact(yes) {
    const side = this.q(".sessions-side");
    side.hidden = yes;
    this.q(".toggle-sessions").setAttribute("aria-pressed", String(!yes));
  }

  // ---- users and sessions ---------------------------------------------------------------

  setUser(user) {
    if (user === this.user) return;
    const problem = idProblem(user);
    if (problem) { this.showSessionsStatus(`User id: ${problem}.`, true); return; }
    this.user = user;
    sessionStorage.setItem(this.key("user"), user);
    sessionStorage.removeItem(this.key("session"));
    this.reset();
  }

  /** Forget everything on screen and start again for the current user and credential. */
  reset() {
    this.stop();
    this.sessionId = null;
    this.record = null;
    this.offset = 0;
    delete this.root.dataset.loaded;
    this.setWaiting(false);
    this.q(".log").replaceChildren();
    this.q(".sessions").replaceChildren();
    this.q(".session-name").textContent = "";
    this.loadSessions({ select: true });
  }

  showSessionsStatus(text, bad = false) {
    const line = this.q(".sessions-status");
    line.textContent = text;
    line.classList.toggle("bad", bad);
  }

  /** expect: a session just written to, which must be listed (else the server read the
   * user id from the header differently from the body: say so rather than show nothing). */
  async loadSessions({ select = false, expect = null } = {}) {
    const user = this.user;
    let page;
    try {
      page = await this.api.get(`v1/sessions?limit=${PAGE + 1}&offset=${this.offset}`);
    } catch (error) {
      if (user !== this.user) return;
      this.showSessionsStatus(error.describe ? error.describe() : String(error), true);
      if (select) this.logError(error);
      return;
    }
    if (user !== this.user) return; // the user changed while we were waiting
    const sessions = page.sessions.slice(0, PAGE);
    const foreign = sessions.find((s) => this.user && s.user_id !== this.user);
    if (foreign) {
      this.showSessionsStatus(`The server read this user id as ${JSON.stringify(foreign.user_id)}: it does not support this id in the X-User-Id header.`, true);
      return;
    }
    if (expect && this.offset === 0 && sessions.length < PAGE && !sessions.some((s) => s.session_id === expect)) {
      this.showSessionsStatus(`Session ${expect} is missing from this user's list: the server does not read this user id from the X-User-Id header as it reads it from the body (a non-ASCII id on an older server?).`, true);
      return;
    }
    this.showSessionsStatus(sessions.length ? "" : "No sessions yet: send a message to start one.");
    this.renderSessions(sessions, page.sessions.length > PAGE);
    if (select) {
      const remembered = sessionStorage.getItem(this.key("session"));
      await this.openSession(remembered || (sessions[0] ? sessions[0].session_id : "default"));
    }
  }

  renderSessions(sessions, more) {
    const list = this.q(".sessions");
    list.replaceChildren(...sessions.map((s) => {
      const open = el(
        "button",
        { type: "button", class: "open", "aria-current": String(s.session_id === this.sessionId), dataset: { sessionId: s.session_id } },
        el("span", { class: "sid" }, s.session_id),
        el("span", { class: "when" }, `${s.message_count} messages · ${formatTime(s.updated_at)}`),
      );
      open.addEventListener("click", () => { if (!this.busy) this.openSession(s.session_id); });
      const remove = el("button", { type: "button", class: "danger delete", "aria-label": `Delete session ${s.session_id}`, title: "Delete (click twice)" }, "✕");
      remove.addEventListener("click", () => this.deleteSession(s.session_id, remove));
      remove.addEventListener("blur", () => { remove.textContent = "✕"; delete remove.dataset.armed; });
      return el("li", {}, open, remove);
    }));
    this.q(".newer").disabled = this.offset === 0;
    this.q(".older").disabled = !more;
    this.q(".page").textContent = sessions.length ? `${this.offset + 1}–${this.offset + sessions.length}` : "";
  }

  markCurrent() {
    for (const button of this.root.querySelectorAll(".sessions button.open")) {
      button.setAttribute("aria-current", String(button.dataset.sessionId === this.sessionId));
    }
    this.q(".session-name").textContent = this.sessionId ? `session ${this.sessionId}` : "";
  }

  async createSession() {
    const input = this.q(".new-id");
    const id = input.value.trim();
    const problem = id && idProblem(id);
    if (problem) { this.showSessionsStatus(`Session id: ${problem}.`, true); return; }
    try {
      const body = { ...(id ? { session_id: id } : {}), ...(this.user ? { user_id: this.user } : {}) };
      const record = await this.api.json("POST", "v1/sessions", { body, userHeader: false });
      input.value = "";
      this.offset = 0;
      await this.loadSessions();
      await this.openSession(record.session_id);
      this.q(".message").focus();
    } catch (error) {
      this.showSessionsStatus(error.describe ? error.describe() : String(error), true);
    }
  }

  async deleteSession(id, button) {
    if (!button.dataset.armed) {
      button.dataset.armed = "true";
      button.textContent = "Delete?";
      return;
    }
    try {
      await this.api.json("DELETE", `v1/sessions/${pathId(id)}`);
      if (id === this.sessionId) { sessionStorage.removeItem(this.key("session")); this.sessionId = null; }
      await this.loadSessions({ select: this.sessionId === null });
    } catch (error) {
      button.textContent = "✕";
      delete button.dataset.armed;
      this.showSessionsStatus(error.describe ? error.describe() : String(error), true);
    }
  }

  async openSession(id) {
    this.sessionId = id;
    sessionStorage.setItem(this.key("session"), id);
    this.markCurrent();
    this.setWaiting(false);
    this.historyLimit = HISTORY;
    await this.loadHistory();
  }

  async loadHistory() {
    const id = this.sessionId, user = this.user, sent = this.sent;
    delete this.root.dataset.loaded;
    const log = this.q(".log");
    let record = null, messages = [];
    try {
      record = await this.api.get(`v1/sessions/${pathId(id)}`);
      const after = Math.max(0, record.last_seq - this.historyLimit);
      const page = await this.api.get(`v1/sessions/${pathId(id)}/messages?after_seq=${after}&limit=${this.historyLimit}`);
      messages = page.messages;
    } catch (error) {
      if (id !== this.sessionId || user !== this.user) return;
      if (!(error instanceof ApiError && error.status === 404)) {
        if (sent === this.sent) { log.replaceChildren(); this.logError(error); }
        return;
      }
    }
    if (id !== this.sessionId || user !== this.user || sent !== this.sent) return; // moved on meanwhile
    this.record = record;
    log.replaceChildren();
    if (record && record.last_seq > this.historyLimit) {
      const earlier = el("button", { type: "button", class: "earlier" }, "Show earlier messages");
      earlier.addEventListener("click", () => { this.historyLimit = Math.min(1000, this.historyLimit * 2); this.loadHistory(); });
      log.append(earlier);
    }
    const pending = (record && record.pending_approvals) || [];
    renderHistory(log, messages, { onChange: () => this.scroll(), onApprove: (call, yes, turn) => this.answer(call, yes, turn), pending });
    if (!messages.length) log.append(el("p", { class: "empty" }, record ? "No messages in this session yet." : `A new session (${id}): nothing stored yet.`));
    this.setWaiting(pending.length > 0);
    this.stick = true;
    this.scroll();
    this.renderDetails();
    this.root.dataset.loaded = id;
  }

  // ---- turns ------------------------------------------------------------------------------

  scroll() {
    if (!this.stick) return;
    const log = this.q(".log");
    log.scrollTop = log.scrollHeight;
  }

  logError(error) {
    const log = this.q(".log");
    const text = error instanceof ApiError ? error.describe() : String(error);
    log.append(el("div", { class: "msg error", role: "alert" }, text));
    this.scroll();
  }

  setBusy(busy) {
    this.busy = busy;
    this.root.setAttribute("aria-busy", String(busy));
    this.q(".busy").hidden = !busy;
    this.q(".stop").hidden = !busy;
    this.q(".user").disabled = busy;
    for (const button of this.root.querySelectorAll(".sessions button, form.new button")) button.disabled = busy;
    this.updateSend();
  }

  setWaiting(waiting) {
    this.waiting = waiting;
    this.q(".waiting").hidden = !waiting;
    this.updateSend();
  }

  updateSend() { this.q(".send").disabled = this.busy || this.waiting; }

  chatPath() {
    return this.agent ? `v1/agents/${pathId(this.agent)}/chat` : "v1/chat";
  }

  async send() {
    const box = this.q(".message");
    const text = box.value;
    if (!text.trim() || this.busy || this.waiting) return;
    box.value = "";
    this.sent = (this.sent || 0) + 1; // a history load still in flight must not wipe this turn
    this.root.dataset.loaded = this.sessionId || "default";
    if (!this.sessionId) this.sessionId = "default";
    const log = this.q(".log");
    log.querySelector(".empty")?.remove();
    this.stick = true;
    const turn = new Turn(log, { onChange: () => this.scroll() });
    turn.user(text);
    const body = { message: text, session_id: this.sessionId };
    if (this.user) body.user_id = this.user;
    const sent = await this.run(turn, this.chatPath(), body, { userHeader: false });
    if (!sent && !box.value) box.value = text; // nothing reached the server: keep the text
    this.loadSessions({ expect: sent ? this.sessionId : null });
  }

  /** Answer an approval; its continuation streams into the same turn. */
  async answer(call, approve, turn) {
    if (this.busy) return false;
    this.setWaiting(false);
    const path = `v1/sessions/${pathId(this.sessionId)}/approvals/${pathId(call.id)}`;
    const ok = await this.run(turn, path, { approve });
    if (!ok) this.setWaiting(true);
    return ok;
  }

  /** Stream one request into a turn; false when the server never took it. */
  async run(turn, path, body, { userHeader = true } = {}) {
    this.setBusy(true);
    this.controller = new AbortController();
    let reached = true;
    try {
      this.runId = null;
      const last = await this.api.stream(path, body, (type, data) => turn.event(type, data, {
        onApprove: (call, yes, t) => this.answer(call, yes, t),
      }), { signal: this.controller.signal, userHeader, onRun: (id) => { this.runId = id; } });
      if (last.type === "done" && last.data.status === "awaiting_approval") this.setWaiting(true);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.code === "unreachable") { reached = false; notifyReachable(false); }
      if (error.code === "aborted") turn.status("interrupted", { error: "stopped from the page" });
      else if (error.code === "connection_lost") { turn.error(error.describe(), "interrupted"); checkHealth(); }
      else turn.error(error.describe(), reached ? "error" : "failed");
    } finally {
      this.controller = null;
      this.setBusy(false);
      this.refreshDetails();
      const active = document.activeElement;
      if (!active || active === document.body || this.root.contains(active)) {
        this.q(".message").focus({ preventScroll: true }); // never steal focus from the other pane
      }
    }
    return reached;
  }

  stop() {
    // a server that keeps runs going without their client needs to be told (any process can)
    if (this.controller && this.runId) this.api.fetch("POST", `v1/runs/${pathId(this.runId)}/cancel`).catch(() => {});
    if (this.controller) this.controller.abort();
  }

  // ---- the session panel ----------------------------------------------------------------------

  async refreshDetails() {
    if (this.q(".details").hidden || !this.sessionId) return;
    try {
      this.record = await this.api.get(`v1/sessions/${pathId(this.sessionId)}`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) { this.status(".state-status", error.describe(), true); return; }
      this.record = null;
    }
    this.renderDetails();
    this.loadExtras();
  }

  renderDetails() {
    if (this.q(".details").hidden) return;
    const record = this.record;
    const info = this.q(".session-info");
    if (!record) {
      info.replaceChildren(el("div", {}, `${this.sessionId}: not stored yet`));
    } else {
      info.replaceChildren(...[
        el("div", { class: "id" }, `${record.session_id} (${record.user_id} @ ${record.tenant_id})`),
        el("div", { class: "muted" }, `${record.message_count} messages · created ${formatTime(record.created_at)} · updated ${formatTime(record.updated_at)}`),
        record.summary ? el("div", {}, el("strong", {}, "Summary: "), String(record.summary)) : null,
        record.pending_approvals.length ? el("div", {}, `${record.pending_approvals.length} approval(s) pending`) : null,
      ].filter(Boolean));
    }
    this.q(".state-view").textContent = JSON.stringify(record ? record.state : {}, null, 2);
    const config = record ? record.config : {};
    const select = this.q(".cfg-model");
    const models = server.config ? server.config.models : [];
    select.replaceChildren(
      el("option", { value: "" }, server.config ? `default (${server.config.default_model})` : "default"),
      ...models.map((m) => el("option", { value: m }, m)),
    );
    select.value = config.model && models.includes(config.model) ? config.model : "";
    for (const name of ["temperature", "top_p", "max_tokens"]) this.q(`.cfg-${name}`).value = config[name] ?? "";
  }

  status(selector, text, bad = false) {
    const line = this.q(selector);
    line.textContent = text;
    line.classList.toggle("bad", bad);
    line.classList.toggle("good", !bad && Boolean(text));
  }

  /** PATCH the session; a session not stored yet is created with the change. */
  async patchSession(change, statusSelector) {
    const id = this.sessionId || "default";
    try {
      try {
        this.record = await this.api.json("PATCH", `v1/sessions/${pathId(id)}`, { body: change });
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
        const body = { session_id: id, ...(this.user ? { user_id: this.user } : {}), ...dropNulls(change) };
        this.record = await this.api.json("POST", "v1/sessions", { body, userHeader: false });
        this.sessionId = id;
        this.loadSessions();
      }
      this.renderDetails();
      this.status(statusSelector, "Saved.");
    } catch (error) {
      this.status(statusSelector, error instanceof ApiError ? error.describe() : String(error), true);
    }
  }

  applyState() {
    let patch;
    try { patch = JSON.parse(this.q(".state-patch").value || "{}"); } catch (error) {
      this.status(".state-status", `Not JSON: ${error.message}`, true);
      return;
    }
    if (!patch || typeof patch !== "object" || Array.isArray(patch)) {
      this.status(".state-status", "The patch must be a JSON object.", true);
      return;
    }
    this.patchSession({ state: patch }, ".state-status");
  }

  applyConfig() {
    const config = { model: this.q(".cfg-model").value || null };
    for (const name of ["temperature", "top_p", "max_tokens"]) {
      const raw = this.q(`.cfg-${name}`).value.trim();
      config[name] = raw === "" ? null : Number(raw);
    }
    this.patchSession({ config }, ".config-status");
  }

  /** Agents, memories: shown only when the server has them (404 otherwise). */
  async loadExtras() {
    const extras = this.q(".extras");
    const parts = [];
    if (server.agents.length > 1) {
      const select = el("select", { class: "agent", "aria-label": "Agent" },
        el("option", { value: "" }, "default agent"),
        ...server.agents.map((a) => el("option", { value: a.name }, a.description ? `${a.name}: ${a.description}` : a.name)));
      select.value = this.agent;
      select.addEventListener("change", () => { this.agent = select.value; });
      parts.push(el("h2", {}, "Agent"), select);
    }
    try {
      const memories = await this.api.get("v1/memories");
      const items = memories.memories || memories.items || [];
      parts.push(el("h2", {}, "Memories"), items.length
        ? el("ul", { class: "small memories" }, items.map((m) => el("li", {}, String(m.content ?? m.text ?? JSON.stringify(m)))))
        : el("p", { class: "muted small" }, "None yet."));
    } catch { /* no memory API on this server */ }
    extras.replaceChildren(...parts);
  }
}

function dropNulls(change) {
  const out = {};
  for (const [part, value] of Object.entries(change)) {
    out[part] = Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null));
  }
  return out;
}

// ---- the page -----------------------------------------------------------------------------------

const panes = [];
const container = $("#panes");

function addPane() {
  const pane = new Pane(panes.length);
  panes.push(pane);
  container.append(pane.root);
  if (narrow.matches) pane.compact(true);
  pane.loadSessions({ select: true });
  return pane;
}

function setSplit(split) {
  const button = $("#split");
  button.setAttribute("aria-pressed", String(split));
  container.classList.toggle("split", split);
  sessionStorage.setItem("agenthost.split", split ? "1" : "");
  if (split && panes.length < 2) addPane();
  if (!split && panes.length > 1) {
    const pane = panes.pop();
    pane.stop();
    pane.root.remove();
  }
  for (const pane of panes) pane.compact(split || narrow.matches);
}

const narrow = window.matchMedia("(max-width: 760px)"); // a phone: the session list starts folded

async function loadServer() {
  const api = new Api();
  try {
    server.config = await api.get("v1/config");
    bar.clearBanner();
  } catch (error) {
    server.config = null;
    if (error instanceof ApiError && error.status !== 401) bar.showBanner(error.describe());
  }
  try {
    const agents = await api.get("v1/agents");
    server.agents = Array.isArray(agents) ? agents : agents.agents || [];
  } catch { server.agents = []; }
}

async function restart() {
  await loadServer();
  for (const pane of panes) pane.reset();
}

const bar = setUpTopBar({ onCredentialChange: restart });

async function main() {
  const up = await checkHealth();
  if (!up) bar.showBanner(`Cannot reach the server at ${location.origin}: is agenthost serve running?`);
  await loadServer();
  addPane();
  $("#split").addEventListener("click", () => setSplit(panes.length < 2));
  if (sessionStorage.getItem("agenthost.split")) setSplit(true);
  panes[0].q(".message").focus();
}

main();
