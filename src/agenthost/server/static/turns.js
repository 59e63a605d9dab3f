// One turn in a conversation log: the user's message, streamed reply segments (Markdown),
// tool calls with their results (collapsible), approvals, and a footer with the run's
// status and usage. Built from live SSE events or from stored messages alike.

import { el } from "./common.js";
import { renderMarkdown } from "./markdown.js";

const STATUS_TEXT = {
  completed: "completed",
  failed: "failed",
  interrupted: "interrupted",
  awaiting_approval: "waiting for approval",
  step_limit: "stopped at the step limit",
  running: "running",
};

function prettyJson(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return String(text); }
}

function oneLine(text, max = 80) {
  const flat = String(text).replace(/\s+/g, " ");
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export class Turn {
  /** log: the pane's log element; onChange(): called after each visible change (scrolling). */
  constructor(log, { onChange = () => {}, before = null } = {}) {
    this.node = el("div", { class: "turn" });
    log.insertBefore(this.node, before);
    this.onChange = onChange;
    this.segment = null;
    this.calls = new Map();
    this.approvals = new Map();
    this.agent = null;
    this.footer = null;
  }

  add(node) {
    this.node.insertBefore(node, node === this.footer ? null : this.footer); // the footer stays last
    this.onChange();
    return node;
  }

  user(text) {
    this.add(el("div", { class: "msg user" }, text));
  }

  /** Reply text arrives in pieces; each segment is re-rendered as Markdown once per frame. */
  delta(text, agent) {
    if (agent && agent !== this.agent) {
      this.agent = agent;
      this.segment = null;
      this.add(el("div", { class: "agent-label" }, `agent: ${agent}`));
    }
    if (!this.segment) {
      const node = this.add(el("div", { class: "msg assistant" }));
      this.segment = { node, text: "", scheduled: false };
    }
    const segment = this.segment;
    segment.text += text;
    if (!segment.scheduled) {
      segment.scheduled = true;
      requestAnimationFrame(() => this.render(segment));
    }
  }

  /** Draw a segment's text now (deltas are drawn once per frame; a finished turn at once). */
  render(segment) {
    if (!segment || !segment.scheduled) return;
    segment.scheduled = false;
    segment.node.replaceChildren(renderMarkdown(segment.text));
    this.onChange();
  }

  toolCall({ id, name, arguments: args }) {
    this.segment = null;
    const result = el("pre", { class: "json result" }, el("span", { class: "muted" }, "running…"));
    const details = el(
      "details",
      { class: "tool", dataset: { callId: id, tool: name } },
      el("summary", {}, el("span", { class: "label" }, `tool ${name}`), ` ${oneLine(args)}`),
      el("div", { class: "small muted" }, "arguments"),
      el("pre", { class: "json arguments" }, prettyJson(args)),
      el("div", { class: "small muted" }, "result"),
      result,
    );
    this.calls.set(id, { details, result });
    this.add(details);
  }

  toolResult({ id, name, content, is_error: isError }) {
    let call = this.calls.get(id);
    if (!call) {
      this.toolCall({ id, name, arguments: "" });
      call = this.calls.get(id);
    }
    call.result.replaceChildren(prettyJson(content));
    call.result.classList.toggle("result-error", Boolean(isError));
    call.details.dataset.done = "true";
    call.details.querySelector("summary").append(
      el("span", { class: isError ? "result-error" : "muted" }, ` → ${oneLine(content, 60)}`),
    );
    this.segment = null;
    this.onChange();
  }

  /** A call waiting for a human; onAnswer(approve) returns a promise. */
  approval({ id, name, arguments: args }, onAnswer) {
    if (this.approvals.has(id)) return;
    this.segment = null;
    const answer = el("span", { class: "answer" });
    const approve = el("button", { type: "button", class: "primary approve" }, "Approve");
    const deny = el("button", { type: "button", class: "deny" }, "Deny");
    const card = el(
      "div",
      { class: "approval", role: "group", "aria-label": `Approval for ${name}`, dataset: { callId: id } },
      el("div", {}, el("strong", {}, `${name}`), " needs your approval"),
      el("pre", { class: "json" }, prettyJson(args)),
      el("div", { class: "row" }, approve, deny, answer),
    );
    const respond = async (yes) => {
      approve.disabled = deny.disabled = true;
      answer.textContent = yes ? "approving…" : "denying…";
      const ok = await onAnswer(yes);
      if (ok) {
        answer.textContent = yes ? "approved" : "denied";
        approve.remove();
        deny.remove();
        card.dataset.answered = yes ? "approved" : "denied";
      } else {
        approve.disabled = deny.disabled = false;
        answer.textContent = "";
      }
    };
    approve.addEventListener("click", () => respond(true));
    deny.addEventListener("click", () => respond(false));
    this.approvals.set(id, card);
    this.add(card);
    approve.focus({ preventScroll: true });
  }

  note(text) {
    this.segment = null;
    this.add(el("div", { class: "msg note" }, text));
  }

  error(message, status = "failed") {
    this.segment = null;
    this.add(el("div", { class: "msg error", role: "alert" }, message));
    this.status(status);
  }

  /** The run's status (and usage when known) under the turn. */
  status(status, { usage, runId, error } = {}) {
    if (!this.footer) this.footer = this.add(el("div", { class: "meta" }));
    const parts = [];
    if (status) this.node.dataset.status = status;
    if (status && status !== "completed") {
      parts.push(el("span", { class: `badge ${status}` }, STATUS_TEXT[status] || status));
    }
    if (error) parts.push(el("span", {}, error));
    if (usage) {
      parts.push(el(
        "span",
        { class: "usage", title: runId ? `tokens used by run ${runId}` : "tokens used by this turn" },
        `${usage.input_tokens} in · ${usage.output_tokens} out · ${usage.requests} model call${usage.requests === 1 ? "" : "s"}`,
      ));
    }
    this.footer.replaceChildren(...parts);
    this.onChange();
  }

  /** One SSE event of a running turn. */
  event(type, data, { onApprove }) {
    switch (type) {
      case "delta": this.delta(data.text || "", data.agent); break;
      case "tool_call": this.toolCall(data); break;
      case "tool_result": this.toolResult(data); break;
      case "approval_required": this.approval(data, (yes) => onApprove(data, yes, this)); break;
      case "done":
        if (data.reply && !this.segment && !this.node.querySelector(".msg.assistant")) this.delta(data.reply);
        this.render(this.segment);  // the text is on the page before the turn says it is done
        this.status(data.status, { usage: data.usage, runId: data.run_id });
        break;
      case "error": this.error(`${data.message} (${data.code})`); break;
      case "handoff":
      case "agent_changed":
        this.note(`handed off to ${data.to || data.agent || "another agent"}`);
        break;
      default: this.note(`${type}: ${oneLine(JSON.stringify(data), 160)}`);
    }
  }
}

/** Render stored messages (oldest first) as turns; returns the turns. */
export function renderHistory(log, messages, { onChange, onApprove, pending = [] }) {
  const turns = [];
  let turn = null;
  const current = () => {
    if (!turn) { turn = new Turn(log, { onChange }); turns.push(turn); }
    return turn;
  };
  for (const message of messages) {
    if (message.role === "user") {
      turn = null;
      current().user(message.content);
    } else if (message.role === "assistant") {
      const t = current();
      const agent = message.meta && message.meta.agent;
      if (message.content) t.delta(message.content, agent);
      for (const call of message.tool_calls || []) t.toolCall(call);
      const status = message.meta && message.meta.status;
      if (status) t.status(status, { error: message.meta.error || undefined });
    } else if (message.role === "tool") {
      current().toolResult({
        id: message.tool_call_id,
        name: message.name,
        content: message.content,
        is_error: Boolean(message.meta && message.meta.error),
      });
    }
  }
  for (const item of pending) {
    const t = current();
    t.approval(item, (yes) => onApprove(item, yes, t));
  }
  return turns;
}
