// Building DOM nodes without HTML strings: every text goes through createTextNode.
import { icon } from "./icons.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "icon") el.append(icon(value));
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || Number.isNaN(bytes)) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(value >= 100 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}

// Server times come as epoch seconds (or ISO text); shown in the page's language, to the minute.
export function formatTime(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value < 1e12 ? value * 1000 : value) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(document.documentElement.lang || undefined,
    { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function formatCount(value) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString(document.documentElement.lang || undefined);
}

export function toast(message, kind = "") {
  const box = document.getElementById("toasts");
  const item = h("div", { class: `toast ${kind}`, role: "status", text: message });
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 7000 : 3000);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Plain-HTTP pages on a LAN address are not a secure context: fall back to a hidden textarea.
    const area = h("textarea", { class: "offscreen" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

export function openDialog(title, ...body) {
  const overlay = document.getElementById("overlay");
  clear(overlay);
  const close = () => { overlay.hidden = true; clear(overlay); };
  const dialog = h("div", { class: "dialog", role: "dialog", "aria-modal": "true" },
    h("div", { class: "row" }, h("h3", { text: title }),
      h("button", { class: "icon-btn", type: "button", style: null, onclick: close, "aria-label": "close", icon: "close" })),
    ...body);
  dialog.querySelector(".row").lastChild.classList.add("push-right");
  overlay.append(dialog);
  overlay.hidden = false;
  overlay.onclick = (event) => { if (event.target === overlay) close(); };
  document.addEventListener("keydown", function onKey(event) {
    if (event.key === "Escape") { close(); document.removeEventListener("keydown", onKey); }
  });
  return { close, dialog };
}
