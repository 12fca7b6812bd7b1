// The conversation list in the sidebar: search, open, rename, delete.
import { h, clear, toast } from "./elements.js";
import { get, patch, del } from "./api.js";
import { t } from "./i18n.js";
import { state, on } from "./state.js";

let listEl = null;
let searchEl = null;
let timer = null;

export function mountSidebar() {
  listEl = document.getElementById("conv-list");
  searchEl = document.getElementById("conv-search");
  searchEl.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refreshConversations, 200); });
  on("conversationsChanged", refreshConversations);
  on("conversation", markActive);
  refreshConversations();
}

function markActive() {
  for (const item of listEl.querySelectorAll(".conv-item")) item.classList.toggle("active", item.dataset.id === state.conversationId);
}

export async function refreshConversations() {
  let items = [];
  try {
    const q = searchEl.value.trim();
    items = (await get(`/v1/conversations${q ? `?q=${encodeURIComponent(q)}` : ""}`)).data;
  } catch (e) {
    toast(e.message, "error");
  }
  clear(listEl);
  if (!items.length) listEl.append(h("div", { class: "conv-empty", text: searchEl.value ? t("chat.noMatches") : t("chat.noConversations") }));
  for (const c of items) listEl.append(item(c));
  markActive();
}

function item(c) {
  const title = h("span", { class: "title", text: c.title, title: c.title });
  const row = h("a", { class: "conv-item", href: `#/chat/${c.id}`, dataset: { id: c.id } }, title,
    h("span", { class: "actions" },
      h("button", { class: "icon-btn rename", type: "button", title: t("chat.rename"), icon: "edit", onclick: (e) => { e.preventDefault(); rename(c, title); } }),
      h("button", { class: "icon-btn delete", type: "button", title: t("common.delete"), icon: "trash", onclick: (e) => { e.preventDefault(); remove(c); } })));
  return row;
}

function rename(c, titleEl) {
  const input = h("input", { type: "text", class: "rename-input", value: c.title });
  input.value = c.title;
  const done = async (save) => {
    if (save && input.value.trim() && input.value.trim() !== c.title) {
      try { await patch(`/v1/conversations/${c.id}`, { title: input.value.trim() }); } catch (e) { toast(e.message, "error"); }
    }
    refreshConversations();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); done(true); }
    if (e.key === "Escape") done(false);
  });
  input.addEventListener("click", (e) => e.preventDefault());
  input.addEventListener("blur", () => done(true));
  titleEl.replaceWith(input);
  input.focus();
  input.select();
}

async function remove(c) {
  if (!confirm(t("chat.confirmDelete", { title: c.title }))) return;
  try {
    await del(`/v1/conversations/${c.id}`);
    if (state.conversationId === c.id) location.hash = "#/chat";
    refreshConversations();
  } catch (e) { toast(e.message, "error"); }
}
