// Hardware panel: what `bendi doctor` sees and what `bendi plan` says fits (GET /v1/hardware, /v1/plan).
import { h, clear, formatBytes, toast } from "./elements.js";
import { get } from "./api.js";
import { t } from "./i18n.js";

let ui = null;

export function mountHardware(view) {
  ui = { machine: h("div", { id: "hw-machine" }, h("div", { class: "muted", text: t("common.loading") })),
    plan: h("tbody", { id: "hw-plan" }), rejected: h("div"), one: h("div") };
  ui.model = h("input", { type: "text", placeholder: "deepseek-r1:14b", id: "plan-model" });
  ui.ctx = h("input", { type: "number", placeholder: "8192", min: 512, step: 512, id: "plan-ctx" });
  view.append(h("div", { class: "page" },
    h("div", { class: "card" }, h("h2", { text: t("hw.machine") }), ui.machine),
    h("div", { class: "card" }, h("h2", { text: t("hw.fits") }), h("p", { class: "muted small", text: t("hw.fitsHint") }),
      h("div", { class: "table-wrap" }, h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ["models.name", "hw.memory", "hw.engine", "models.speed", "hw.prefill", "models.fit"].map((k) => h("th", { text: t(k) })))),
        ui.plan)), ui.rejected),
    h("div", { class: "card" }, h("h2", { text: t("hw.planOne") }),
      h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); planOne(); } }, ui.model, ui.ctx,
        h("button", { class: "primary", type: "submit", text: t("hw.plan") })), ui.one)));
  load();
  return [h("button", { type: "button", icon: "refresh", onclick: load }, ` ${t("common.refresh")}`)];
}

const stat = (k, v) => h("div", { class: "stat" }, h("div", { class: "k", text: k }), h("div", { class: "v", text: v ?? "—" }));
const gb = (bytes) => (bytes === undefined || bytes === null ? "—" : `${(bytes / 2 ** 30).toFixed(1)} GiB`);

function pick(obj, ...paths) {
  for (const path of paths) {
    let v = obj;
    for (const part of path.split(".")) v = v?.[part];
    if (v !== undefined && v !== null && v !== "") return v;
  }
  return undefined;
}

function renderMachine(doc) {
  const hw = doc.hardware ?? doc.machine ?? doc;
  const cpu = hw.cpu ?? {};
  const memory = hw.memory ?? hw.ram ?? {};
  const gpus = hw.gpus ?? doc.gpus ?? [];
  const simd = cpu.simd_flags ?? cpu.simd ?? cpu.flags ?? [];
  clear(ui.machine).append(h("div", { class: "grid" },
    stat(t("hw.cpu"), pick(cpu, "model", "name", "brand") ?? (typeof hw.cpu === "string" ? hw.cpu : undefined)),
    stat(t("hw.cores"), [pick(cpu, "physical_cores", "cores"), pick(cpu, "logical_cores", "threads")].filter((x) => x !== undefined).join(" / ")),
    stat(t("hw.simd"), Array.isArray(simd) ? simd.join(" ") : String(simd)),
    stat(t("hw.ram"), `${gb(pick(memory, "available_bytes", "ram_available_bytes") ?? pick(hw, "ram_available_bytes"))} / ${gb(pick(memory, "total_bytes", "ram_total_bytes") ?? pick(hw, "ram_total_bytes"))}`),
    stat(t("hw.disk"), gb(pick(hw, "disk_free_bytes", "disk.free_bytes") ?? pick(doc, "disk_free_bytes"))),
    stat(t("hw.gpus"), gpus.length ? gpus.map((g) => `${g.name ?? g.model ?? "GPU"} ${gb(g.vram_bytes ?? g.memory_total_bytes ?? g.memory_bytes)}`).join(", ") : t("hw.noGpu"))));
  const problems = doc.problems ?? doc.warnings ?? [];
  if (problems.length) {
    ui.machine.append(h("div", { class: "problems" }, problems.map((p) =>
      h("div", { class: "badge warn problem", text: typeof p === "string" ? p : (p.message ?? JSON.stringify(p)) }))));
  }
  const good = doc.recommended ?? doc.runs_well ?? doc.recommendations;
  if (good && good.length) {
    ui.machine.append(h("p", { class: "small" }, h("b", { text: `${t("hw.runsWell")}: ` }),
      good.map((r) => (typeof r === "string" ? r : r.model)).join(", ")));
  }
}

function planRow(row) {
  const speed = row.decode_tokens_per_s;
  return h("tr", { class: "plan-row", dataset: { model: row.model } },
    h("td", {}, h("b", { text: row.model }), h("div", { class: "muted small", text: [row.quant, row.context_tokens ? `${row.context_tokens} ctx` : null].filter(Boolean).join(" · ") })),
    h("td", { text: formatBytes(row.total_bytes) }),
    h("td", { text: [row.engine, row.gpu_layers ? `GPU ${row.gpu_layers}` : null].filter(Boolean).join(" · ") || "—" }),
    h("td", { text: speed ? `${speed.toFixed(1)} tok/s` : "—" }),
    h("td", { text: row.prefill_tokens_per_s ? `${row.prefill_tokens_per_s.toFixed(0)} tok/s` : "—" }),
    h("td", {}, row.fits === false ? h("span", { class: "badge bad", text: t("models.noFit"), title: row.reason ?? "" })
      : h("span", { class: `badge ${speed >= 8 ? "ok" : "warn"}`, text: speed >= 8 ? t("models.fits") : t("models.slow"), title: row.reason ?? "" })));
}

// Long tables show their best rows and a "show all" row that reveals the rest.
export function collapseRows(tbody, keep) {
  const rows = [...tbody.children];
  if (rows.length <= keep + 2) return;
  rows.slice(keep).forEach((row) => { row.hidden = true; });
  const more = h("tr", { class: "more-row" }, h("td", { colspan: 6 },
    h("button", { type: "button", class: "link-btn", text: t("common.showAll", { n: rows.length }),
      onclick: () => { rows.forEach((row) => { row.hidden = false; }); more.remove(); } })));
  tbody.append(more);
}

async function load() {
  try { renderMachine(await get("/v1/hardware")); }
  catch (e) { clear(ui.machine).append(h("div", { class: "muted", text: e.message })); }
  try {
    const plan = await get("/v1/plan");
    const rows = Array.isArray(plan) ? plan : (plan.plans ?? plan.data ?? []);
    clear(ui.plan).append(...rows.map(planRow));
    collapseRows(ui.plan, 8);
    if (!rows.length) ui.plan.append(h("tr", {}, h("td", { colspan: 6, class: "muted", text: t("hw.nothingFits") })));
    const rejected = plan.rejected ?? [];
    clear(ui.rejected);
    if (rejected.length) {
      ui.rejected.append(h("details", { class: "rejected" }, h("summary", { text: t("hw.rejected", { n: rejected.length }) }),
        h("ul", {}, rejected.map((r) => h("li", {}, h("b", { text: r.model }), ` — ${r.reason ?? ""}`)))));
    }
  } catch (e) { clear(ui.plan).append(h("tr", {}, h("td", { colspan: 6, class: "muted", text: e.message }))); }
}

async function planOne() {
  const model = ui.model.value.trim();
  if (!model) return;
  const query = new URLSearchParams({ model });
  if (ui.ctx.value) query.set("ctx", ui.ctx.value);
  try {
    const row = await get(`/v1/plan?${query}`);
    clear(ui.one).append(h("div", { class: "grid plan-one" },
      stat(t("models.fit"), row.fits ? "✓" : "✗"), stat(t("hw.memory"), formatBytes(row.total_bytes)),
      stat(t("hw.weights"), formatBytes(row.weights_bytes)), stat(t("hw.kv"), formatBytes(row.kv_cache_bytes)),
      stat(t("hw.engine"), `${row.engine ?? "—"}${row.gpu_layers ? ` · GPU ${row.gpu_layers}` : ""}`),
      stat(t("models.speed"), row.decode_tokens_per_s ? `${row.decode_tokens_per_s.toFixed(1)} tok/s` : "—")),
    h("p", { class: "small", text: row.reason ?? "" }));
  } catch (e) { toast(e.message, "error"); }
}
