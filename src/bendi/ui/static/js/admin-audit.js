// Admin › Usage (tokens by user, model and day) and Admin › Audit log (filters, load more, export, verify).
import { h, clear, toast, formatTime, formatCount } from "./elements.js";
import { get } from "./api.js";
import { t } from "./i18n.js";

const PERIODS = ["1d", "7d", "30d"];
const ACTIONS = ["http.request", "auth.login", "auth.login_failed", "auth.logout", "auth.password_change", "key.create",
  "key.revoke", "user.create", "user.update", "user.disable", "user.delete", "department.create", "department.delete",
  "acl.grant", "acl.revoke", "model.pull", "model.delete", "kb.create", "kb.delete", "kb.examples.add", "kb.examples.delete", "audit.export"];
const PAGE = 100;

function periodSelect(id, value = "7d") {
  const select = h("select", { id }, PERIODS.map((p) => h("option", { value: p, text: t(`period.${p}`) })));
  select.value = value;
  return select;
}

const stat = (k, v) => h("div", { class: "stat" }, h("div", { class: "k", text: k }), h("div", { class: "v", text: v }));

export function mountUsage(panel) {
  const period = periodSelect("usage-period");
  const rows = h("tbody", { id: "usage-table" });
  const totals = h("div", { class: "grid usage-totals" });
  panel.append(h("div", { class: "card" },
    h("div", { class: "row" }, h("h2", { text: t("usage.title") }), h("label", { class: "row push-right small muted" }, t("usage.period"), period)),
    totals,
    h("div", { class: "table-wrap" }, h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["usage.day", "usage.user", "usage.model", "usage.requests", "usage.prompt", "usage.completion", "usage.total"]
        .map((k, i) => h("th", { class: i >= 3 ? "num" : "", text: t(k) })))),
      rows))));
  period.addEventListener("change", load);
  async function load() {
    let data = [];
    try { data = (await get(`/v1/admin/usage?${new URLSearchParams({ since: period.value, group_by: "day,user,model" })}`)).data ?? []; }
    catch (e) { toast(e.message, "error"); return; }
    clear(rows);
    const sum = { requests: 0, prompt: 0, completion: 0 };
    if (!data.length) rows.append(h("tr", {}, h("td", { colspan: 7, class: "muted", text: t("usage.none") })));
    for (const r of data) {
      const prompt = r.prompt_tokens ?? 0;
      const completion = r.completion_tokens ?? 0;
      sum.requests += r.requests ?? 0;
      sum.prompt += prompt;
      sum.completion += completion;
      rows.append(h("tr", { class: "usage-row", dataset: { user: r.username ?? r.user ?? "", model: r.model ?? "" } },
        h("td", { class: "nowrap", text: r.day ?? "—" }), h("td", { text: r.username ?? r.user ?? "—" }), h("td", { text: r.model ?? "—" }),
        h("td", { class: "num", text: formatCount(r.requests) }), h("td", { class: "num", text: formatCount(prompt) }),
        h("td", { class: "num", text: formatCount(completion) }), h("td", { class: "num", text: formatCount(r.total_tokens ?? prompt + completion) })));
    }
    clear(totals).append(stat(t("usage.requests"), formatCount(sum.requests)), stat(t("usage.prompt"), formatCount(sum.prompt)),
      stat(t("usage.completion"), formatCount(sum.completion)));
  }
  load();
  return load;
}

function auditRow(r) {
  const tokens = (r.prompt_tokens ?? 0) + (r.completion_tokens ?? 0);
  const failed = r.status >= 400 || r.action === "auth.login_failed";
  const detail = r.detail && Object.keys(r.detail).length ? JSON.stringify(r.detail) : "";
  return h("tr", { class: "audit-row", dataset: { action: r.action, actor: r.actor ?? "", seq: r.seq ?? "" }, title: detail },
    h("td", { class: "nowrap", text: formatTime(r.ts ?? r.time) }),
    h("td", { text: r.actor || "—" }),
    h("td", { class: "nowrap", text: r.address || "—" }),
    h("td", {}, h("span", { class: `badge ${failed ? "bad" : r.action === "http.request" ? "gray" : ""}`, text: r.action })),
    h("td", { class: "audit-route" }, r.method ? h("span", { class: "muted", text: `${r.method} ` }) : null, r.route || "—"),
    h("td", { text: r.status || "—" }),
    h("td", { text: r.model || "—" }),
    h("td", { text: r.kb || "—" }),
    h("td", { class: "num", text: tokens ? formatCount(tokens) : "—" }));
}

export function mountAudit(panel) {
  const actor = h("input", { type: "text", id: "audit-actor", placeholder: t("audit.anyone"), autocomplete: "off" });
  const action = h("select", { id: "audit-action" }, h("option", { value: "", text: t("audit.anyAction") }),
    ACTIONS.map((a) => h("option", { value: a, text: a })));
  const period = periodSelect("audit-period", "1d");
  const rows = h("tbody", { id: "audit-table" });
  const more = h("button", { type: "button", id: "audit-more", class: "link-btn", text: t("audit.more"), hidden: true, onclick: () => load(true) });
  const verdict = h("span", { id: "audit-verdict", class: "audit-verdict" });
  const jsonl = h("a", { id: "audit-export-jsonl", class: "button-link", download: "audit.jsonl", text: t("audit.exportJsonl") });
  const csv = h("a", { id: "audit-export-csv", class: "button-link", download: "audit.csv", text: t("audit.exportCsv") });
  let nextBefore = null;
  const filters = h("form", { class: "row audit-filters", onsubmit: (e) => { e.preventDefault(); load(false); } },
    h("label", { class: "field" }, h("span", { text: t("audit.actor") }), actor),
    h("label", { class: "field" }, h("span", { text: t("audit.action") }), action),
    h("label", { class: "field" }, h("span", { text: t("usage.period") }), period),
    h("button", { class: "primary", type: "submit", id: "audit-apply", text: t("audit.apply") }));
  for (const input of [action, period]) input.addEventListener("change", () => load(false));
  panel.append(
    h("div", { class: "card" }, h("div", { class: "row" }, h("h2", { text: t("audit.title") }),
      h("span", { class: "push-right row" }, jsonl, csv,
        h("button", { type: "button", id: "audit-verify", icon: "shield", onclick: verify }, ` ${t("audit.verify")}`))),
    verdict, filters,
    h("div", { class: "table-wrap" }, h("table", { class: "data audit" },
      h("thead", {}, h("tr", {}, ["audit.time", "audit.actor", "audit.address", "audit.action", "audit.route", "audit.status",
        "audit.model", "audit.kb", "audit.tokens"].map((k) => h("th", { class: k === "audit.tokens" ? "num" : "", text: t(k) })))),
      rows)),
    h("div", { class: "row center" }, more)));

  function exportLinks() {
    for (const [link, format] of [[jsonl, "jsonl"], [csv, "csv"]]) {
      link.href = `/v1/admin/audit/export?${new URLSearchParams({ since: period.value, format })}`;
    }
  }

  async function load(append = false) {
    exportLinks();
    const query = new URLSearchParams({ since: period.value, limit: String(PAGE) });
    if (actor.value.trim()) query.set("actor", actor.value.trim());
    if (action.value) query.set("action", action.value);
    if (append && nextBefore !== null) query.set("before", String(nextBefore));
    let body;
    try { body = await get(`/v1/admin/audit?${query}`); } catch (e) { toast(e.message, "error"); return; }
    const data = body.data ?? [];
    if (!append) clear(rows);
    if (!append && !data.length) rows.append(h("tr", {}, h("td", { colspan: 9, class: "muted", text: t("audit.none") })));
    rows.append(...data.map(auditRow));
    nextBefore = body.next_before ?? null;
    more.hidden = nextBefore === null;
  }

  async function verify() {
    clear(verdict).append(h("span", { class: "badge gray", text: t("audit.verifying") }));
    try {
      const v = await get("/v1/admin/audit/verify");
      const text = v.ok ? t("audit.chainOk", { n: formatCount(v.records) })
        : t("audit.chainBroken", { seq: v.first_bad_seq ?? "?", reason: v.reason ?? "" });
      clear(verdict).append(h("span", { class: `badge ${v.ok ? "ok" : "bad"}`, dataset: { ok: v.ok ? "1" : "0" }, text }));
    } catch (e) { clear(verdict).append(h("span", { class: "badge bad", text: e.message })); }
  }

  load(false);
  return () => load(false);
}
