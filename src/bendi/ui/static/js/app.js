// Boot: language, sidebar, and the hash router that shows one screen at a time.
import { setLanguage, pickLanguage, t, onLanguageChange } from "./i18n.js";
import { clear } from "./elements.js";
import { mountSidebar } from "./sidebar.js";
import { mountChat, openConversation, newChat } from "./chat.js";
import { mountKnowledge } from "./knowledge.js";
import { mountModels } from "./models.js";
import { mountHardware } from "./hardware.js";
import { mountSettings } from "./settings.js";
import { refreshVerdicts } from "./state.js";
import { icon } from "./icons.js";

const MOUNTS = { chat: mountChat, knowledge: mountKnowledge, models: mountModels, hardware: mountHardware, settings: mountSettings };
const mounted = new Map(); // view name -> its topbar tools
let currentView = null;

function show(view) {
  const section = document.getElementById(`view-${view}`);
  if (!mounted.has(view)) {
    if (view !== "chat") section.classList.add("padded");
    mounted.set(view, MOUNTS[view](section) ?? []);
  }
  for (const name of Object.keys(MOUNTS)) document.getElementById(`view-${name}`).hidden = name !== view;
  for (const link of document.querySelectorAll(".main-nav a")) link.classList.toggle("active", link.dataset.view === view);
  const tools = document.getElementById("topbar-tools");
  clear(tools).append(...mounted.get(view));
  document.getElementById("view-title").textContent = t(`nav.${view}`);
  currentView = view;
  document.getElementById("app").classList.remove("nav-open");
}

async function route() {
  const [, view = "chat", arg = ""] = location.hash.replace(/^#/, "").split("/");
  const name = view in MOUNTS ? view : "chat";
  show(name);
  if (name === "chat") {
    try { await openConversation(arg ? decodeURIComponent(arg) : null); } catch { location.hash = "#/chat"; }
  }
}

async function boot() {
  await setLanguage(pickLanguage());
  mountSidebar();
  document.getElementById("new-chat").addEventListener("click", () => {
    if (location.hash === "#/chat" || location.hash === "") { show("chat"); newChat(); } else location.hash = "#/chat";
  });
  const app = document.getElementById("app");
  document.getElementById("sidebar-open").append(icon("menu", 20));
  document.getElementById("sidebar-close").append(icon("close", 18));
  document.getElementById("sidebar-open").addEventListener("click", () => app.classList.add("nav-open"));
  document.getElementById("sidebar-close").addEventListener("click", () => app.classList.remove("nav-open"));
  document.getElementById("scrim").addEventListener("click", () => app.classList.remove("nav-open"));
  onLanguageChange(() => { if (currentView) document.getElementById("view-title").textContent = t(`nav.${currentView}`); });
  window.addEventListener("hashchange", route);
  refreshVerdicts();
  await route();
  document.body.dataset.ready = "1";
}

boot();
