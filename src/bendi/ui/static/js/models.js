// Models: installed (size, quant, context, loaded, memory), pull from the catalog with live progress
// that survives a page reload (the server keeps pull state at /v1/pulls), delete.
import { h, clear, formatBytes, toast } from "./elements.js";
import { get, post, del, request } from "./api.js";
import { t } from "./i18n.js";
import { state, refreshModels, refreshVerdicts, on, verdictFor } from "./state.js";
import { collapseRows } from "./hardware.js";
import { isAdmin } from "./auth.js";
import { presetsCard } from "./presets.js";
import { evalsCard } from "./evals.js";

let ui = null;
let pollTimer = null;

export function mountModels(view) {
  ui = {};
  ui.installed = h("tbody", { id: "installed-models" });
  ui.pulls = h("div", { id: "pulls" });
  ui.catalog = h("tbody", { id: "catalog-models" });
  ui.custom = h("input", { type: "text", id: "pull-name", placeholder: "deepseek-r1:7b" });
  // Pulling and deleting models is for administrators (team mode); everyone sees what is installed.
  const manage = isAdmin();
  view.append(h("div", { class: "page" },
    h("div", { class: "card" }, h("h2", { text: t("models.installed") }),
      h("div", { class: "table-wrap" }, h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ["models.name", "models.size", "models.quant", "models.context", "models.state", ""].map((k) => h("th", { text: k ? t(k) : "" })))),
        ui.installed))),
    !manage ? null : h("div", { class: "card" }, h("h2", { text: t("models.pull") }),
      h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); startPull(ui.custom.value.trim()); } },
        ui.custom, h("button", { class: "primary", type: "submit", id: "pull-start", text: t("models.pullButton") })),
      ui.pulls),
    !manage ? null : h("div", { class: "card" }, h("h2", { text: t("models.catalog") }), h("p", { class: "muted small", text: t("models.catalogHint") }),
      h("div", { class: "table-wrap" }, h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ["models.name", "models.size", "models.fit", "models.speed", ""].map((k) => h("th", { text: k ? t(k) : "" })))),
        ui.catalog))),
    presetsCard(),
    manage ? evalsCard() : null));
  on("models", renderInstalled);
  on("verdicts", () => { renderCatalog(); renderInstalled(); });
  refresh();
  if (manage) { renderCatalog(); pollPulls(); }
  return [h("button", { type: "button", icon: "refresh", onclick: refresh }, ` ${t("common.refresh")}`)];
}

async function refresh() {
  await refreshModels().catch((e) => toast(e.message, "error"));
  await refreshVerdicts();
}

async function renderInstalled() {
  if (!ui) return;
  let loaded = new Map();
  try { loaded = new Map(((await get("/api/ps")).models ?? []).map((m) => [m.name, m])); } catch { /* shown as not loaded */ }
  clear(ui.installed);
  if (!state.models.length) ui.installed.append(h("tr", {}, h("td", { colspan: 6, class: "muted", text: t("models.noneInstalled") })));
  for (const m of state.models) {
    const running = loaded.get(m.name);
    // Until a model is loaded the API has no GGUF details: read the quantization off the name.
    const quant = m.quant || (/(?:^|[-:_])((?:i?q\d(?:_[a-z0-9]+)*)|bf16|f16|f32)(?=$|[-:.])/i.exec(m.name)?.[1] ?? "—").toUpperCase();
    ui.installed.append(h("tr", { class: "model-row", dataset: { name: m.name } },
      h("td", {}, h("b", { text: m.name }), " ", verdictFor(m.name) ? fitBadge(verdictFor(m.name)) : null,
        m.params ? h("div", { class: "muted small", text: m.params }) : null),
      h("td", { text: formatBytes(m.size) }),
      h("td", { text: quant }),
      h("td", { text: running?.context_length ? running.context_length.toLocaleString() : "—" }),
      h("td", {}, running
        ? h("span", { class: "badge ok", text: `${t("models.loaded")} · ${formatBytes(running.size)}` })
        : h("span", { class: "badge gray", text: t("models.notLoaded") }),
        running?.replicas ? replicaList(running.replicas) : null),
      h("td", {}, isAdmin() ? h("button", { class: "icon-btn", type: "button", title: t("common.delete"), icon: "trash", onclick: () => removeModel(m.name) }) : null)));
  }
}

// A replicated model (bendi serve --upstream): each replica, in or out of service, with its load.
function replicaList(replicas) {
  return h("div", { class: "replicas small" }, ...replicas.map((r) => h("div", {},
    h("span", { class: `badge ${r.healthy ? "ok" : "bad"}`, text: r.healthy ? "✓" : "✗", title: r.last_error || "" }),
    ` ${r.url} · ${r.in_flight} / ${r.requests_total}`)));
}

function planRows() {
  const plan = state.plan;
  if (!plan) return [];
  const rows = Array.isArray(plan) ? plan : (plan.plans ?? plan.data ?? []);
  return rows; // only what fits here is offered for download; the hardware screen lists the rest
}

function fitBadge(row, withSpeed = true) {
  if (row.fits === false) return h("span", { class: "badge bad", text: t("models.noFit"), title: row.reason ?? "" });
  const speed = row.decode_tokens_per_s ?? 0;
  const label = `${speed >= 8 ? t("models.fits") : t("models.slow")}${speed && withSpeed ? ` · ${speed.toFixed(speed >= 10 ? 0 : 1)} tok/s` : ""}`;
  return h("span", { class: `badge ${speed >= 8 ? "ok" : "warn"}`, text: label, title: row.reason ?? "" });
}

function renderCatalog() {
  if (!ui) return;
  clear(ui.catalog);
  const rows = planRows();
  if (!rows.length) ui.catalog.append(h("tr", {}, h("td", { colspan: 5, class: "muted", text: t("models.noCatalog") })));
  for (const row of rows) {
    ui.catalog.append(h("tr", {},
      h("td", {}, h("b", { text: row.model }), h("div", { class: "muted small", text: row.reason ?? "" })),
      h("td", { text: formatBytes(row.weights_bytes ?? row.total_bytes) }),
      h("td", {}, fitBadge(row, false)),
      h("td", { text: row.decode_tokens_per_s ? `~${row.decode_tokens_per_s.toFixed(1)} tok/s` : "—" }),
      h("td", {}, h("button", { type: "button", text: t("models.pullButton"), onclick: () => startPull(row.model) }))));
  }
  collapseRows(ui.catalog, 6);
}

async function startPull(name) {
  if (!name) return;
  try {
    await post("/v1/pulls", { model: name });
    ui.custom.value = "";
    pollPulls();
  } catch (e) { toast(e.message, "error"); }
}

async function removeModel(name) {
  if (!confirm(t("models.confirmDelete", { name }))) return;
  try { await request("DELETE", "/api/delete", { model: name }); await refresh(); }
  catch (e) { toast(e.message, "error"); }
}

function pullRow(p) {
  const fraction = p.total_bytes ? p.completed_bytes / p.total_bytes : 0;
  const bar = h("i");
  bar.style.width = `${Math.min(100, fraction * 100).toFixed(1)}%`;
  const stateText = p.error ? p.error : t(`models.status.${p.status}`);
  const detail = p.total_bytes ? `${formatBytes(p.completed_bytes)} / ${formatBytes(p.total_bytes)} · ${(fraction * 100).toFixed(1)}%` : "";
  const speed = p.bytes_per_s ? ` · ${formatBytes(p.bytes_per_s)}/s` : "";
  return h("div", { class: "pull-row", dataset: { model: p.model, status: p.status } },
    h("div", { class: "row" }, h("b", { text: p.model }), h("span", { class: `badge ${p.error ? "bad" : p.status === "success" ? "ok" : "gray"}`, text: stateText }),
      h("span", { class: "muted small push-right pull-detail", text: detail + speed }),
      p.active ? h("button", { class: "icon-btn", type: "button", title: t("common.cancel"), icon: "close",
        onclick: () => del(`/v1/pulls/${encodeURIComponent(p.model)}`).catch((e) => toast(e.message, "error")) }) : null),
    h("div", { class: "progress" }, bar));
}

async function pollPulls() {
  clearTimeout(pollTimer);
  if (!ui) return;
  let pulls = [];
  try { pulls = (await get("/v1/pulls")).data ?? []; } catch { pulls = []; }
  clear(ui.pulls).append(...pulls.map(pullRow));
  if (pulls.some((p) => p.active)) pollTimer = setTimeout(pollPulls, 700);
  else if (pulls.some((p) => p.status === "success" && !state.models.some((m) => m.name === p.model))) refresh();
}
