// A small Markdown renderer for model replies that builds DOM nodes and never parses HTML.
// Supported: paragraphs, line breaks, headings, fenced and indented code, lists (nested by
// indentation), block quotes, tables, rules, **bold**, *italic*, ~~strike~~, `code`,
// [links](https://...) and bare https:// URLs. Raw HTML in the text stays text. Links go
// out only to http(s) and mailto URLs; images are shown as links (no remote loads).

import { el } from "./common.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_DIVIDER = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;

export function renderMarkdown(text) {
  const root = el("div", { class: "md" });
  root.append(...blocks(String(text).replace(/\r\n?/g, "\n").split("\n")));
  return root;
}

function blocks(lines) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    let match;
    if ((match = FENCE.exec(line))) {
      const fence = match[1];
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
      i++; // the closing fence (absent while a reply is still streaming)
      out.push(codeBlock(body.join("\n"), match[2]));
    } else if (/^( {4}|\t)/.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || !lines[i].trim())) body.push(lines[i++].replace(/^( {4}|\t)/, ""));
      out.push(codeBlock(body.join("\n").replace(/\n+$/, ""), ""));
    } else if ((match = HEADING.exec(line))) {
      out.push(el(`h${Math.min(6, match[1].length + 2)}`, {}, inline(match[2])));
      i++;
    } else if (RULE.test(line)) {
      out.push(el("hr"));
      i++;
    } else if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && QUOTE.test(lines[i])) body.push(lines[i++].replace(QUOTE, ""));
      out.push(el("blockquote", {}, blocks(body)));
    } else if (ITEM.test(line)) {
      i = list(lines, i, out);
    } else if (line.includes("|") && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      i = table(lines, i, out);
    } else {
      const body = [];
      while (i < lines.length && lines[i].trim() && !startsBlock(lines, i)) body.push(lines[i++]);
      if (!body.length) body.push(lines[i++]); // a line that looked like a block but is not one
      const p = el("p");
      body.forEach((text, n) => {
        if (n) p.append(el("br"));
        p.append(...inline(text.trim()));
      });
      out.push(p);
    }
  }
  return out;
}

function startsBlock(lines, i) {
  const line = lines[i];
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function codeBlock(text, language) {
  const code = el("code", language ? { class: `language-${language.replace(/[^\w+#-]/g, "")}` } : {}, text);
  const copy = el("button", { type: "button", class: "copy", title: "Copy the code", "aria-label": "Copy the code" }, "Copy");
  copy.addEventListener("click", () => {
    navigator.clipboard?.writeText(text).then(() => { copy.textContent = "Copied"; }, () => { copy.textContent = "Select to copy"; });
  });
  return el("pre", {}, copy, code);
}

function list(lines, i, out) {
  const first = ITEM.exec(lines[i]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const node = el(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) node.setAttribute("start", String(parseInt(first[2], 10)));
  while (i < lines.length) {
    const match = ITEM.exec(lines[i]);
    if (!match || match[1].length !== indent || /\d/.test(match[2]) !== ordered) break;
    const body = [match[3]];
    i++;
    while (i < lines.length) {
      const next = lines[i];
      if (!next.trim()) {
        const following = lines[i + 1] ?? "";
        if (following.trim() && leading(following) > indent) { body.push(""); i++; continue; }
        break;
      }
      if (leading(next) <= indent && (ITEM.test(next) || startsBlock(lines, i))) break;
      body.push(next.slice(Math.min(leading(next), indent + 2)));
      i++;
    }
    const content = blocks(body);
    const item = el("li");
    // a tight item: its single paragraph's children go straight into the <li>
    if (content.length && content[0].tagName === "P") item.append(...content.shift().childNodes);
    item.append(...content);
    node.append(item);
  }
  out.push(node);
  return i;
}

const leading = (line) => line.length - line.trimStart().length;

function cells(line) {
  let text = line.trim();
  if (text.startsWith("|")) text = text.slice(1);
  if (text.endsWith("|") && !text.endsWith("\\|")) text = text.slice(0, -1);
  return text.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

function table(lines, i, out) {
  const head = cells(lines[i]);
  const alignments = cells(lines[i + 1]).map((c) => (c.endsWith(":") ? (c.startsWith(":") ? "center" : "right") : ""));
  const row = (values, tag) => el("tr", {}, head.map((_, n) => {
    const cell = el(tag, {}, inline(values[n] ?? ""));
    if (alignments[n]) cell.style.textAlign = alignments[n];
    return cell;
  }));
  const body = el("tbody");
  i += 2;
  while (i < lines.length && lines[i].trim() && lines[i].includes("|")) body.append(row(cells(lines[i++]), "td"));
  out.push(el("table", {}, el("thead", {}, row(head, "th")), body));
  return i;
}

// ---- inline ---------------------------------------------------------------------------

const INLINE = new RegExp(
  [
    /\\([\\`*_{}[\]()#+\-.!~>|<])/.source, // 1: an escaped character
    /(`+)([^`]|[^`][\s\S]*?[^`])\2(?!`)/.source, // 2, 3: a code span
    /(!?)\[([^\]\n]*)\]\(\s*<?((?:[^\s()<>]|\([^\s()<>]*\))*)>?(?:\s+"[^"\n]*")?\s*\)/.source, // 4, 5, 6: link or image
    /\*\*(?=\S)([\s\S]*?\S)\*\*/.source, // 7: bold
    /(?<![\w])__(?=\S)([\s\S]*?\S)__(?![\w])/.source, // 8: bold
    /~~(?=\S)([\s\S]*?\S)~~/.source, // 9: strike
    /\*(?=[^\s*])([\s\S]*?[^\s*])\*/.source, // 10: italic
    /(?<![\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w])/.source, // 11: italic
    /<((?:https?:\/\/|mailto:)[^\s<>]+)>/.source, // 12: autolink
    /(https?:\/\/[^\s<>()"']*[^\s<>()"'.,;:!?*_~])/.source, // 13: a bare URL
  ].join("|"),
  "g",
);

export function inline(text) {
  const out = [];
  let at = 0;
  const pattern = new RegExp(INLINE.source, "g");
  let match;
  while ((match = pattern.exec(text))) {
    if (match.index > at) out.push(document.createTextNode(text.slice(at, match.index)));
    at = pattern.lastIndex;
    if (match[1] !== undefined) out.push(document.createTextNode(match[1]));
    else if (match[2] !== undefined) out.push(el("code", {}, match[3].replace(/^ (.*) $/, "$1")));
    else if (match[5] !== undefined) out.push(link(match[6], match[5], match[4] === "!"));
    else if (match[7] !== undefined || match[8] !== undefined) out.push(el("strong", {}, inline(match[7] ?? match[8])));
    else if (match[9] !== undefined) out.push(el("del", {}, inline(match[9])));
    else if (match[10] !== undefined || match[11] !== undefined) out.push(el("em", {}, inline(match[10] ?? match[11])));
    else if (match[12] !== undefined || match[13] !== undefined) out.push(link(match[12] ?? match[13], null, false));
  }
  if (at < text.length) out.push(document.createTextNode(text.slice(at)));
  return out;
}

/** A safe URL (http, https, mailto) or null. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

/** label null: an autolink, whose text is the URL itself (not parsed again). */
function link(raw, label, image) {
  const href = safeUrl(raw);
  const children = label === null ? [raw] : image ? [`image: ${label || raw}`] : inline(label || raw);
  if (!href) return el("span", { class: "unsafe-link", title: "link not followed: only http(s) and mailto links are" }, children);
  return el("a", { href, target: "_blank", rel: "noopener noreferrer nofollow" }, children);
}
