// UI strings in zh-CN and en: the browser language picks, the settings page can override.
const SUPPORTED = ["zh-CN", "en"];
let strings = {};
let fallback = {};
let current = "zh-CN";
const listeners = [];

export function pickLanguage() {
  const saved = localStorage.getItem("bendi.lang");
  if (SUPPORTED.includes(saved)) return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "zh-CN"];
  for (const lang of wanted) {
    if (lang.toLowerCase().startsWith("zh")) return "zh-CN";
    if (lang.toLowerCase().startsWith("en")) return "en";
  }
  return "zh-CN";
}

async function load(lang) {
  const response = await fetch(`i18n/${lang}.json`, { cache: "no-cache" });
  return response.json();
}

export async function setLanguage(lang, { save = false } = {}) {
  current = SUPPORTED.includes(lang) ? lang : "zh-CN";
  if (save) localStorage.setItem("bendi.lang", current);
  strings = await load(current);
  if (!Object.keys(fallback).length) fallback = current === "en" ? strings : await load("en");
  document.documentElement.lang = current;
  translatePage();
  for (const listener of listeners) listener(current);
}

export function onLanguageChange(listener) { listeners.push(listener); }
export function language() { return current; }

export function t(key, vars = {}) {
  let text = strings[key] ?? fallback[key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}
