// A small, safe Markdown renderer: it builds DOM nodes (never HTML strings), so model output and
// document text can't inject markup; images become plain links so nothing remote loads by itself.
import { h, copyText } from "./elements.js";

const SAFE_URL = /^(https?:|mailto:)/i;

function link(href, text) {
  const url = href.trim();
  if (!SAFE_URL.test(url)) return document.createTextNode(text);
  return h("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow", referrerpolicy: "no-referrer", text });
}

// Inline patterns, tried at each position; the earliest match wins.
const INLINE = [
  ["code", /`([^`\n]+)`/],
  ["image", /!\[([^\]\n]*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)/],
  ["link", /\[([^\]\n]+)\]\(([^)\s]+)(?:\s+"[^"]*")?\)/],
  ["cite", /\[(\d{1,3})\]/],
  ["bold", /\*\*([^*\n]+?)\*\*|__([^_\n]+?)__/],
  ["strike", /~~([^~\n]+?)~~/],
  ["em", /\*([^*\s][^*\n]*?)\*|(?<![\w])_([^_\n]+?)_(?![\w])/],
  ["url", /https?:\/\/[^\s<>()\u3000-\u303f\uff00-\uffef]+[^\s<>().,;:!?'"\u3000-\u303f\uff00-\uffef]/],
];

export function renderInline(text, options = {}) {
  const out = [];
  let rest = text;
  while (rest) {
    let best = null;
    for (const [kind, pattern] of INLINE) {
      const match = pattern.exec(rest);
      if (match && (best === null || match.index < best.match.index)) best = { kind, match };
    }
    if (!best) { out.push(document.createTextNode(rest)); break; }
    const { kind, match } = best;
    if (match.index > 0) out.push(document.createTextNode(rest.slice(0, match.index)));
    rest = rest.slice(match.index + match[0].length);
    if (kind === "code") out.push(h("code", { text: match[1] }));
    else if (kind === "image") out.push(link(match[2], `🖼 ${match[1] || match[2]}`));
    else if (kind === "link") out.push(link(match[2], match[1]));
    else if (kind === "url") out.push(link(match[0], match[0]));
    else if (kind === "cite") {
      const n = Number(match[1]);
      if (options.onCite && options.citationCount >= n && n >= 1) {
        out.push(h("button", { class: "cite-ref", type: "button", text: String(n), onclick: () => options.onCite(n) }));
      } else out.push(document.createTextNode(match[0]));
    } else {
      const tag = { bold: "strong", strike: "del", em: "em" }[kind];
      out.push(h(tag, {}, renderInline(match[1] ?? match[2], options)));
    }
  }
  return out;
}

function codeBlock(lang, code) {
  const button = h("button", { class: "icon-btn copy-code", type: "button", icon: "copy" }, " Copy");
  button.addEventListener("click", async () => {
    await copyText(code);
    button.lastChild.textContent = " ✓";
    setTimeout(() => { button.lastChild.textContent = " Copy"; }, 1200);
  });
  return h("div", { class: "codeblock" },
    h("div", { class: "code-head" }, h("span", { text: lang || "text" }), button),
    h("pre", {}, h("code", { text: code })));
}

const splitRow = (line) => line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
const isTableSep = (line) => /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(line);
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

export function renderMarkdown(source, options = {}) {
  const root = h("div", { class: "md" });
  const lines = String(source ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) {
      const p = h("p");
      paragraph.forEach((line, n) => {
        if (n) p.append(h("br"));
        p.append(...renderInline(line, options));
      });
      root.append(p);
      paragraph = [];
    }
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = /^\s*(```|~~~)\s*([\w+#.-]*)/.exec(line);
    if (fence) {
      flush();
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1; // the closing fence (or the end of a still-streaming block)
      root.append(codeBlock(fence[2], body.join("\n")));
      continue;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      flush();
      root.append(h(`h${Math.min(heading[1].length + 1, 6)}`, {}, renderInline(heading[2], options)));
      i += 1;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); root.append(h("hr")); i += 1; continue; }
    if (line.includes("|") && i + 1 < lines.length && isTableSep(lines[i + 1])) {
      flush();
      const head = splitRow(line);
      const table = h("table", {}, h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, renderInline(c, options))))));
      const body = h("tbody");
      i += 2;
      while (i < lines.length && lines[i].includes("|") && lines[i].trim()) {
        body.append(h("tr", {}, splitRow(lines[i]).map((c) => h("td", {}, renderInline(c, options)))));
        i += 1;
      }
      table.append(body);
      root.append(table);
      continue;
    }
    if (/^\s*>/.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ""));
      const inner = renderMarkdown(quoted.join("\n"), options);
      root.append(h("blockquote", {}, [...inner.childNodes]));
      continue;
    }
    if (LIST_ITEM.test(line)) {
      flush();
      i = renderList(lines, i, root, options);
      continue;
    }
    if (!line.trim()) { flush(); i += 1; continue; }
    paragraph.push(line);
    i += 1;
  }
  flush();
  return root;
}

function renderList(lines, start, parent, options) {
  const first = LIST_ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = h(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) list.setAttribute("start", String(parseInt(first[2], 10)));
  let i = start;
  let item = null;
  while (i < lines.length) {
    const match = LIST_ITEM.exec(lines[i]);
    if (match && match[1].length === indent && /\d/.test(match[2]) === ordered) {
      item = h("li", {}, renderInline(match[3], options));
      list.append(item);
      i += 1;
    } else if (match && match[1].length > indent && item) {
      i = renderList(lines, i, item, options);
    } else if (lines[i].trim() && /^\s{2,}/.test(lines[i]) && item) {
      item.append(h("br"), ...renderInline(lines[i].trim(), options));
      i += 1;
    } else break;
  }
  parent.append(list);
  return i;
}
