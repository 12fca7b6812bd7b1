// Evaluation reports on the models screen (administrators): what `bendi eval` measured, newest first,
// one row per model (quality, char-F1, citations, refusals, speed, memory), and the HTML report to
// download (GET /api/evals, /api/evals/{id}/html).
import { h, clear, formatBytes, toast } from "./elements.js";
import { get, authHeaders } from "./api.js";
import { t } from "./i18n.js";

const pct = (v) => (v === null || v === undefined ? "—" : `${Math.round(v * 100)}%`);
const num = (v, digits, unit) => (v === null || v === undefined ? "—" : `${v.toFixed(digits)}${unit}`);
const COLUMNS = [
  ["evals.quality", (m) => pct(m.quality)], ["evals.charF1", (m) => pct(m.char_f1)],
  ["evals.citations", (m) => pct(m.citation_accuracy)], ["evals.refusals", (m) => pct(m.refusal_rate)],
  ["evals.ttft", (m) => num(m.ttft_s, 2, " s")], ["evals.speed", (m) => num(m.tokens_per_s, 1, " tok/s")],
  ["evals.memory", (m) => (m.memory_bytes ? formatBytes(m.memory_bytes) : "—")],
];

export function evalsCard() {
  const list = h("div", { id: "eval-list" }, h("div", { class: "muted", text: t("common.loading") }));
  load(list);
  return h("div", { class: "card", id: "evals" }, h("h2", { text: t("evals.title") }),
    h("p", { class: "muted small", text: t("evals.hint") }), list);
}

async function load(list) {
  let reports = [];
  try { reports = (await get("/api/evals")).reports ?? []; }
  catch (e) { clear(list).append(h("div", { class: "muted", text: e.message })); return; }
  clear(list);
  if (!reports.length) { list.append(h("p", { class: "muted", text: t("evals.none") })); return; }
  for (const report of reports) list.append(reportTable(report));
}

function reportTable(report) {
  const when = report.started_at ? new Date(report.started_at * 1000).toLocaleString() : report.id;
  const rows = Object.entries(report.models ?? {}).map(([label, data]) => {
    const m = data.metrics ?? {};
    return h("tr", { class: "eval-model", dataset: { model: label } }, h("td", {}, h("b", { text: label })),
      ...COLUMNS.map(([, cell]) => h("td", { text: cell(m) })));
  });
  return h("div", { class: "eval-report", dataset: { id: report.id } },
    h("div", { class: "row" }, h("b", { text: [report.suite, when, report.status === "done" ? null : report.status].filter(Boolean).join(" · ") }),
      h("button", { type: "button", class: "eval-html", icon: "book", onclick: () => downloadHtml(report.id) }, ` ${t("evals.html")}`)),
    h("div", { class: "table-wrap" }, h("table", { class: "data" },
      h("thead", {}, h("tr", {}, h("th", { text: t("models.name") }), ...COLUMNS.map(([key]) => h("th", { text: t(key) })))),
      h("tbody", {}, rows))));
}

// The report is fetched with the page's credentials and saved as a file: a plain link would carry
// no API key, and the page's policy allows no frames.
async function downloadHtml(id) {
  try {
    const response = await fetch(`/api/evals/${encodeURIComponent(id)}/html`, { headers: authHeaders("GET"), credentials: "same-origin" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const url = URL.createObjectURL(await response.blob());
    const link = h("a", { href: url, download: `bendi-eval-${id}.html` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { toast(e.message, "error"); }
}
