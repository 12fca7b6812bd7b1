// Boot: language, sign-in (team mode), sidebar, and the hash router that shows one screen at a time.
import { setLanguage, pickLanguage, t, onLanguageChange } from "./i18n.js";
import { h, clear } from "./elements.js";
import { mountSidebar } from "./sidebar.js";
import { mountChat, openConversation, newChat } from "./chat.js";
import { mountKnowledge } from "./knowledge.js";
import { mountModels } from "./models.js";
import { mountHardware } from "./hardware.js";
import { mountSettings } from "./settings.js";
import { mountAccount } from "./account.js";
import { mountAdmin, showAdminTab } from "./admin.js";
import { signIn, session, isTeam, isAdmin, logout } from "./auth.js";
import { refreshVerdicts } from "./state.js";
import { icon } from "./icons.js";

const MOUNTS = { chat: mountChat, knowledge: mountKnowledge, models: mountModels, hardware: mountHardware, settings: mountSettings,
  account: mountAccount, admin: mountAdmin };
// Screens that exist only for a signed-in user, or only for an administrator.
const ALLOWED = { account: () => isTeam(), admin: () => isTeam() && isAdmin() };
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
  const name = view in MOUNTS && (ALLOWED[view]?.() ?? true) ? view : "chat";
  if (name !== view && location.hash) window.history.replaceState(null, "", "#/chat");
  show(name);
  if (name === "admin") showAdminTab(arg);
  if (name === "chat") {
    try { await openConversation(arg ? decodeURIComponent(arg) : null); } catch { location.hash = "#/chat"; }
  }
}

// Team mode: the account links and the signed-in user's name with a sign-out button.
function mountAccountBox() {
  for (const link of document.querySelectorAll(".main-nav a")) {
    if (ALLOWED[link.dataset.view]) link.hidden = !ALLOWED[link.dataset.view]();
  }
  if (!isTeam()) return;
  const user = session.user ?? {};
  const box = document.getElementById("account-box");
  box.hidden = false;
  box.append(h("a", { class: "account-who", href: "#/account", id: "account-name", title: t("nav.account") }, icon("user", 18),
    h("span", { class: "account-text" }, h("b", { text: user.display_name || user.username }),
      h("span", { class: "muted small", text: t(`role.${user.role}`) }))),
  h("button", { class: "icon-btn", type: "button", id: "logout", title: t("account.logout"), "aria-label": t("account.logout"), onclick: logout }, icon("logout", 18)));
}

async function boot() {
  await setLanguage(pickLanguage());
  await signIn();
  mountAccountBox();
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
