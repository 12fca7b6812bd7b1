// A knowledge base's access panel (team mode, owner or admin): the owner, grants to departments and
// users (read or write), add and remove a grant.
import { h, clear, toast } from "./elements.js";
import { get, post, del } from "./api.js";
import { t } from "./i18n.js";
import { isAdmin } from "./auth.js";

const path = (kb) => `/v1/knowledge-bases/${encodeURIComponent(kb)}/access`;

// Admins pick from lists; an owner who is not an admin cannot list users, so types a name instead.
async function subjectChoices(kind) {
  if (!isAdmin()) return null;
  try {
    const body = await get(kind === "department" ? "/v1/admin/departments" : "/v1/admin/users");
    return (body.data ?? []).map((s) => ({ value: s.id, label: kind === "department" ? s.name
      : (s.display_name && s.display_name !== s.username ? `${s.display_name} (${s.username})` : s.username) }));
  } catch { return null; }
}

// Returns the card, hidden until the server says this caller may manage the base; onManage(true) then.
export function accessPanel(kb, { onManage = () => {} } = {}) {
  const card = h("div", { class: "card access-panel", id: "kb-access", hidden: true });
  const owner = h("p", { class: "small", id: "kb-owner" });
  const rows = h("tbody", { id: "kb-grants" });
  const kind = h("select", { id: "grant-kind" }, h("option", { value: "department", text: t("access.department") }),
    h("option", { value: "user", text: t("access.user") }));
  const subjectBox = h("span", { class: "grant-subject" });
  const permission = h("select", { id: "grant-permission" }, h("option", { value: "read", text: t("access.read") }),
    h("option", { value: "write", text: t("access.write") }));
  let subject = null;
  const form = h("form", { class: "row", onsubmit: async (event) => {
    event.preventDefault();
    const value = subject.value.trim();
    if (!value) return;
    try {
      await post(path(kb), { [kind.value]: value, permission: permission.value });
      toast(t("access.granted"));
    } catch (e) { toast(e.message, "error"); }
    load();
  } }, kind, subjectBox, permission, h("button", { class: "primary", type: "submit", id: "grant-add", text: t("access.add") }));

  async function fillSubjects() {
    const choices = await subjectChoices(kind.value);
    subject = choices
      ? h("select", { id: "grant-subject" }, choices.map((c) => h("option", { value: c.value, text: c.label })))
      : h("input", { type: "text", id: "grant-subject", placeholder: t(kind.value === "department" ? "access.departmentName" : "access.username") });
    clear(subjectBox).append(subject);
  }
  kind.addEventListener("change", fillSubjects);

  card.append(h("h2", { icon: "shield" }, ` ${t("access.title")}`), owner,
    h("div", { class: "table-wrap" }, h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["access.who", "access.kind", "access.permission", ""].map((k) => h("th", { text: k ? t(k) : "" })))),
      rows)),
    h("h3", { class: "subhead", text: t("access.addTitle") }), form);

  async function load() {
    let body;
    try { body = await get(path(kb)); } catch { card.hidden = true; onManage(false); return; } // 403/404: not theirs to manage
    card.hidden = false;
    onManage(true);
    const o = body.owner;
    clear(owner).append(h("span", { class: "muted", text: t("access.owner") }),
      h("b", { text: o ? (o.display_name || o.username || o.name || o.id) : t("access.noOwner") }));
    clear(rows);
    const grants = body.grants ?? [];
    if (!grants.length) rows.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: t("access.none") })));
    for (const g of grants) {
      rows.append(h("tr", { class: "grant-row", dataset: { subject: g.subject_name ?? g.subject_id, permission: g.permission, kind: g.subject_kind } },
        h("td", {}, h("b", { text: g.subject_name ?? g.subject_id })),
        h("td", {}, h("span", { class: "badge gray", text: t(`access.${g.subject_kind}`) })),
        h("td", {}, h("span", { class: `badge ${g.permission === "write" ? "warn" : "ok"}`, text: t(`access.${g.permission}`) })),
        h("td", {}, h("button", { class: "icon-btn grant-remove", type: "button", title: t("access.remove"), icon: "trash",
          onclick: async () => {
            if (!confirm(t("access.confirmRemove", { name: g.subject_name ?? g.subject_id }))) return;
            try { await del(`${path(kb)}/${encodeURIComponent(g.id)}`); } catch (e) { toast(e.message, "error"); }
            load();
          } }))));
    }
  }
  fillSubjects().then(load);
  return card;
}
