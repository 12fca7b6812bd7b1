// The chat screen: model picker, per-chat settings, streaming answers, stop/regenerate/edit, KB chat.
import { h, clear, formatBytes, toast } from "./elements.js";
import { get, post, patch, del, sse } from "./api.js";
import { t } from "./i18n.js";
import { state, on, emit, refreshModels, refreshKnowledgeBases, verdictFor, kbLabel } from "./state.js";
import { AssistantView, assistantFromStored, userView } from "./messages.js";

let ui = null;
let conversation = null; // the stored conversation (with messages), or null for a new chat
let controller = null;   // AbortController of the stream in flight
let pendingKb = null;    // a knowledge base chosen on the knowledge screen for the next new chat

function verdictBadge(name) {
  const v = verdictFor(name);
  if (!v) return "";
  const speed = v.decode_tokens_per_s ? ` · ~${v.decode_tokens_per_s >= 10 ? Math.round(v.decode_tokens_per_s) : v.decode_tokens_per_s.toFixed(1)} tok/s` : "";
  return v.fits === false ? ` · ${t("models.noFit")}` : ` · ${t("models.fits")}${speed}`;
}

function fillModelPicker() {
  const select = ui.model;
  const wanted = conversation?.model || select.value || localStorage.getItem("bendi.model") || "";
  clear(select);
  if (!state.models.length) select.append(h("option", { value: "", text: t("chat.noModels") }));
  for (const m of state.models) {
    const size = m.size ? ` (${formatBytes(m.size)})` : "";
    select.append(h("option", { value: m.name, text: `${m.name}${size}${verdictBadge(m.name)}` }));
  }
  if (state.models.some((m) => m.name === wanted)) select.value = wanted;
}

function fillKbPicker() {
  const select = ui.kb;
  const wanted = conversation ? conversation.knowledge_base ?? "" : pendingKb ?? select.value ?? "";
  clear(select).append(h("option", { value: "", text: t("chat.noKb") }));
  for (const kb of state.knowledgeBases) select.append(h("option", { value: kb.name, text: kbLabel(kb) }));
  select.value = state.knowledgeBases.some((kb) => kb.name === wanted) ? wanted : "";
}

export function mountChat(view, tools) {
  ui = {};
  ui.model = h("select", { id: "model-picker", class: "model-pick", "aria-label": t("chat.model"),
    onchange: () => { localStorage.setItem("bendi.model", ui.model.value); saveSettings({ model: ui.model.value }); } });
  ui.kb = h("select", { id: "kb-picker", class: "kb-pill", onchange: () => saveSettings({ knowledge_base: ui.kb.value || null }) });
  ui.settingsBtn = h("button", { class: "icon-btn", id: "chat-settings-toggle", type: "button", title: t("chat.settings"), icon: "settings",
    onclick: () => { ui.drawer.hidden = !ui.drawer.hidden; } });
  ui.tools = [ui.model, ui.kb, ui.settingsBtn];
  ui.system = h("textarea", { id: "system-prompt", rows: 1, placeholder: t("chat.systemPlaceholder") });
  ui.temperature = h("input", { id: "temperature", type: "number", min: 0, max: 2, step: 0.1, placeholder: "0.6" });
  ui.context = h("input", { id: "context-tokens", type: "number", min: 256, step: 256, placeholder: "4096" });
  ui.maxTokens = h("input", { id: "max-tokens", type: "number", min: 1, step: 64, placeholder: "∞" });
  const saveDrawer = () => saveSettings({
    system_prompt: ui.system.value,
    temperature: ui.temperature.value === "" ? null : Number(ui.temperature.value),
    context_tokens: ui.context.value === "" ? null : Number(ui.context.value),
    max_tokens: ui.maxTokens.value === "" ? null : Number(ui.maxTokens.value),
  });
  for (const input of [ui.system, ui.temperature, ui.context, ui.maxTokens]) input.addEventListener("change", saveDrawer);
  ui.drawer = h("div", { class: "settings-drawer", hidden: true },
    h("label", { class: "field" }, h("span", { "data-i18n": "chat.systemPrompt", text: t("chat.systemPrompt") }), ui.system),
    h("label", { class: "field" }, h("span", { "data-i18n": "chat.temperature", text: t("chat.temperature") }), ui.temperature),
    h("label", { class: "field" }, h("span", { "data-i18n": "chat.context", text: t("chat.context") }), ui.context),
    h("label", { class: "field" }, h("span", { "data-i18n": "chat.maxTokens", text: t("chat.maxTokens") }), ui.maxTokens));
  ui.inner = h("div", { class: "messages-inner", id: "messages" });
  ui.scroller = h("div", { class: "messages" }, ui.inner);
  ui.input = h("textarea", { id: "chat-input", rows: 1, placeholder: t("chat.placeholder"), "data-i18n-placeholder": "chat.placeholder" });
  ui.send = h("button", { id: "send", class: "primary send-btn", type: "button", text: t("chat.send"), onclick: () => onSend() });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); onSend(); }
  });
  ui.input.addEventListener("input", () => {
    ui.input.style.height = "auto";
    ui.input.style.height = `${ui.input.scrollHeight}px`;
    ui.input.style.overflowY = ui.input.scrollHeight > window.innerHeight * 0.4 ? "auto" : "hidden";
  });
  const composer = h("div", { class: "composer" }, ui.drawer,
    h("div", { class: "composer-box" }, ui.input, ui.send),
    h("div", { class: "hint", "data-i18n": "chat.hint", text: t("chat.hint") }));
  view.append(h("div", { class: "chat" }, ui.scroller, composer));
  on("models", fillModelPicker);
  on("verdicts", fillModelPicker);
  on("knowledgeBases", fillKbPicker);
  refreshModels().catch((e) => toast(e.message, "error"));
  refreshKnowledgeBases();
  renderConversation();
  return ui.tools;
}

async function saveSettings(changes) {
  if (!conversation) return;
  try { conversation = { ...conversation, ...(await patch(`/v1/conversations/${conversation.id}`, changes)) }; }
  catch (e) { toast(e.message, "error"); }
}

export async function openConversation(id) {
  if (controller) controller.abort();
  conversation = id ? await get(`/v1/conversations/${encodeURIComponent(id)}`) : null;
  state.conversationId = conversation?.id ?? null;
  renderConversation();
  emit("conversation", conversation);
}

function renderConversation() {
  if (!ui) return;
  ui.system.value = conversation?.system_prompt ?? "";
  ui.temperature.value = conversation?.temperature ?? "";
  ui.context.value = conversation?.context_tokens ?? "";
  ui.maxTokens.value = conversation?.max_tokens ?? "";
  fillModelPicker();
  fillKbPicker();
  clear(ui.inner);
  const messages = conversation?.messages ?? [];
  if (!messages.length) {
    ui.inner.append(h("div", { class: "welcome" }, h("img", { src: "icons/bendi.svg", width: 56, height: 56, alt: "" }),
      h("h2", { text: t("chat.welcomeTitle") }), h("p", { text: t("chat.welcomeText") })));
  }
  messages.forEach((m, index) => {
    if (m.role === "user") ui.inner.append(userView(m, { onEdit: (text) => editAndResend(m, text) }));
    else if (m.role === "assistant") {
      const last = index === messages.length - 1;
      ui.inner.append(assistantFromStored(m, last ? () => regenerate(m) : null).el);
    }
  });
  scrollDown(true);
}

function scrollDown(force = false) {
  const s = ui.scroller;
  if (force || s.scrollHeight - s.scrollTop - s.clientHeight < 160) s.scrollTop = s.scrollHeight;
}

function promptMessages() {
  const out = [];
  if (conversation?.system_prompt) out.push({ role: "system", content: conversation.system_prompt });
  const turns = (conversation?.messages ?? []).filter((m) => m.role !== "system").map((m) => ({ role: m.role, content: m.content }));
  // Keep the newest turns that fit the chat's context budget (rough estimate: 3 characters a token),
  // leaving room for the answer; the server still rejects an over-long prompt with a clear error.
  const budget = conversation?.context_tokens ? Math.max(256, conversation.context_tokens - 1024) * 3 : Infinity;
  let used = out.reduce((n, m) => n + m.content.length, 0);
  const kept = [];
  for (let i = turns.length - 1; i >= 0; i -= 1) {
    used += turns[i].content.length;
    if (used > budget && kept.length) break;
    kept.unshift(turns[i]);
  }
  return out.concat(kept);
}

function setBusy(busy) {
  ui.send.textContent = busy ? t("chat.stop") : t("chat.send");
  ui.send.classList.toggle("primary", !busy);
  ui.send.classList.toggle("danger", busy);
  ui.send.id = busy ? "stop" : "send";
}

async function onSend() {
  if (controller) { controller.abort(); return; }
  const text = ui.input.value.trim();
  if (!text) return;
  if (!ui.model.value) { toast(t("chat.pickModel"), "error"); return; }
  ui.input.value = "";
  ui.input.style.height = "auto";
  await sendText(text);
}

async function sendText(text) {
  try {
    if (!conversation) {
      conversation = await post("/v1/conversations", {
        title: text.slice(0, 40), model: ui.model.value, knowledge_base: ui.kb.value || null,
        system_prompt: ui.system.value || null,
        temperature: ui.temperature.value === "" ? null : Number(ui.temperature.value),
        context_tokens: ui.context.value === "" ? null : Number(ui.context.value),
        max_tokens: ui.maxTokens.value === "" ? null : Number(ui.maxTokens.value),
      });
      state.conversationId = conversation.id;
      pendingKb = null;
      emit("conversationsChanged");
      rememberInUrl(conversation.id);
    }
    const stored = await post(`/v1/conversations/${conversation.id}/messages`, { role: "user", content: text });
    conversation.messages.push(stored);
    renderConversation();
    await streamAnswer();
  } catch (e) {
    toast(e.message, "error");
  }
}

function rememberInUrl(id) {
  if (location.hash !== `#/chat/${id}`) window.history.replaceState(null, "", `#/chat/${id}`);
}

async function streamAnswer() {
  const model = ui.model.value;
  const view = new AssistantView({ model });
  ui.inner.querySelector(".welcome")?.remove();
  ui.inner.append(view.el);
  scrollDown(true);
  controller = new AbortController();
  setBusy(true);
  const body = { model, messages: promptMessages(), stream: true };
  if (conversation.temperature !== null && conversation.temperature !== undefined) body.temperature = conversation.temperature;
  if (conversation.max_tokens) body.max_tokens = conversation.max_tokens;
  if (conversation.knowledge_base) body.knowledge_base = conversation.knowledge_base;
  let error = null;
  let stopped = false;
  try {
    for await (const chunk of sse("/v1/chat/completions", body, controller.signal)) {
      const delta = chunk.choices?.[0]?.delta ?? {};
      view.update({ reasoning: delta.reasoning_content ?? delta.reasoning ?? "", content: delta.content ?? "",
        citations: chunk.citations ?? null });
      scrollDown();
    }
  } catch (e) {
    if (e.name === "AbortError") stopped = true;
    else error = e.message;
  }
  controller = null;
  setBusy(false);
  view.finish({ error, stopped });
  if (view.content || view.reasoning) {
    try {
      const saved = await post(`/v1/conversations/${conversation.id}/messages`, {
        role: "assistant", content: view.content, reasoning: view.reasoning || null,
        citations: view.citations, model,
      });
      conversation.messages.push(saved);
      view.el.dataset.id = saved.id;
      const regenerateButton = view.tools.querySelector(".regenerate");
      if (!regenerateButton) view.tools.append(h("button", { class: "icon-btn regenerate", type: "button", title: t("chat.regenerate"), icon: "refresh", onclick: () => regenerate(saved) }));
      emit("conversationsChanged");
    } catch (e) { toast(e.message, "error"); }
  }
}

async function regenerate(message) {
  if (controller) return;
  conversation = await del(`/v1/conversations/${conversation.id}/messages/${message.id}`);
  renderConversation();
  await streamAnswer();
}

async function editAndResend(message, text) {
  if (controller || !text.trim()) return;
  conversation = await del(`/v1/conversations/${conversation.id}/messages/${message.id}`);
  await sendText(text.trim());
}

export function newChat() {
  if (controller) controller.abort();
  conversation = null;
  state.conversationId = null;
  renderConversation();
  emit("conversation", null);
  ui?.input.focus();
}

export function newChatWithKnowledgeBase(name) {
  pendingKb = name;
  if (location.hash === "#/chat") newChat();
  else location.hash = "#/chat";
}
