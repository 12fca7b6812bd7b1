// Presets on the models screen: a form to make one (base model, system prompt, temperature, top_p,
// num_ctx, an optional knowledge base) through POST /api/create, and the list of presets with delete.
import { h, clear, toast } from "./elements.js";
import { get, post, request } from "./api.js";
import { t } from "./i18n.js";
import { state, on, refreshModels, kbLabel } from "./state.js";
import { isAdmin } from "./auth.js";

let ui = null;

export function presetsCard() {
  ui = {};
  ui.name = h("input", { type: "text", id: "preset-name", placeholder: "safety-assistant", required: true });
  ui.base = h("select", { id: "preset-base", required: true });
  ui.system = h("textarea", { id: "preset-system", rows: 3, placeholder: t("presets.systemHint") });
  ui.temperature = h("input", { type: "number", id: "preset-temperature", min: "0", max: "2", step: "0.05", placeholder: "0.8" });
  ui.topP = h("input", { type: "number", id: "preset-top-p", min: "0.01", max: "1", step: "0.01", placeholder: "0.95" });
  ui.numCtx = h("input", { type: "number", id: "preset-num-ctx", min: "1", step: "1", placeholder: "4096" });
  ui.kb = h("select", { id: "preset-kb" });
  ui.list = h("tbody", { id: "preset-list" });
  const field = (key, input) => h("label", { class: "field" }, t(key), input);
  const form = !isAdmin() ? null : h("form", { id: "preset-form", class: "preset-form", onsubmit: (e) => { e.preventDefault(); createPreset(); } },
    h("div", { class: "row" }, field("presets.name", ui.name), field("presets.base", ui.base), field("presets.kb", ui.kb)),
    field("presets.system", ui.system),
    h("div", { class: "row" }, field("presets.temperature", ui.temperature), field("presets.topP", ui.topP), field("presets.numCtx", ui.numCtx),
      h("button", { class: "primary", type: "submit", id: "preset-create", text: t("presets.create") })));
  on("models", render);
  loadKnowledgeBases();
  return h("div", { class: "card", id: "presets" }, h("h2", { text: t("presets.title") }),
    h("p", { class: "muted small", text: t("presets.hint") }), form,
    h("div", { class: "table-wrap" }, h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["presets.name", "presets.base", "presets.kb", ""].map((k) => h("th", { text: k ? t(k) : "" })))),
      ui.list)));
}

async function loadKnowledgeBases() {
  let bases = [];
  try { bases = (await get("/v1/knowledge-bases")).data ?? []; } catch { bases = []; }
  clear(ui.kb).append(h("option", { value: "", text: t("presets.noKb") }),
    ...bases.map((kb) => h("option", { value: kb.name, text: kbLabel(kb) })));
}

// /api/tags marks a preset with details.parent_model (its base); plain models have none.
async function render() {
  if (!ui) return;
  let tags = [];
  try { tags = (await get("/api/tags")).models ?? []; } catch { tags = []; }
  const presets = tags.filter((m) => m.details?.parent_model);
  const chosen = ui.base.value;
  clear(ui.base).append(...state.models.filter((m) => !presets.some((p) => p.name === m.name))
    .map((m) => h("option", { value: m.name, text: m.name })));
  if (chosen) ui.base.value = chosen;
  clear(ui.list);
  if (!presets.length) ui.list.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: t("presets.none") })));
  for (const p of presets) {
    ui.list.append(h("tr", { class: "preset-row", dataset: { name: p.name } },
      h("td", {}, h("b", { text: p.name })), h("td", { text: p.details.parent_model }), h("td", { text: p.knowledge_base || "—" }),
      h("td", {}, isAdmin() ? h("button", { class: "icon-btn", type: "button", title: t("common.delete"), icon: "trash", onclick: () => removePreset(p.name) }) : null)));
  }
}

async function createPreset() {
  const parameters = {};
  if (ui.temperature.value !== "") parameters.temperature = Number(ui.temperature.value);
  if (ui.topP.value !== "") parameters.top_p = Number(ui.topP.value);
  if (ui.numCtx.value !== "") parameters.num_ctx = Number(ui.numCtx.value);
  const body = { model: ui.name.value.trim(), from: ui.base.value, parameters, stream: false };
  if (ui.system.value.trim()) body.system = ui.system.value.trim();
  if (ui.kb.value) body.knowledge_base = ui.kb.value;
  try {
    await post("/api/create", body);
    toast(t("presets.created", { name: body.model }));
    ui.name.value = ""; ui.system.value = "";
    await refreshModels();
  } catch (e) { toast(e.message, "error"); }
}

async function removePreset(name) {
  if (!confirm(t("presets.confirmDelete", { name }))) return;
  try { await request("DELETE", "/api/delete", { model: name }); }
  catch (e) { if (!(e instanceof SyntaxError)) toast(e.message, "error"); } // Ollama's delete answers 200 with no body
  await refreshModels().catch((e) => toast(e.message, "error"));
}
