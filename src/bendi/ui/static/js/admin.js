// Administration (admins only): tabs for users, departments, everyone's API keys, usage and the audit log.
import { h, clear, toast, formatTime } from "./elements.js";
import { get, post, del } from "./api.js";
import { t } from "./i18n.js";
import { SCOPES, keyForm, keyTableHead, fillKeyTable } from "./keys.js";
import { mountUsers } from "./admin-users.js";
import { mountUsage, mountAudit } from "./admin-audit.js";

// Each tab's mount fills its panel once and returns the function that reloads it.
const TABS = { users: mountUsers, departments: mountDepartments, keys: mountAllKeys, usage: mountUsage, audit: mountAudit };
let ui = null;

export function mountAdmin(view) {
  ui = { tabs: h("nav", { class: "tabs admin-tabs", id: "admin-tabs" }), body: h("div"), panels: new Map(), current: null };
  for (const name of Object.keys(TABS)) {
    ui.tabs.append(h("a", { href: `#/admin/${name}`, dataset: { tab: name }, text: t(`admin.tab.${name}`) }));
  }
  view.append(h("div", { class: "page" }, ui.tabs, ui.body));
  return [h("button", { type: "button", icon: "refresh", onclick: () => ui.panels.get(ui.current)?.reload() }, ` ${t("common.refresh")}`)];
}

export function showAdminTab(name) {
  const tab = name in TABS ? name : "users";
  if (!ui.panels.has(tab)) {
    const panel = h("div", { class: "admin-panel", id: `admin-${tab}` });
    ui.body.append(panel);
    ui.panels.set(tab, { panel, reload: TABS[tab](panel) });
  } else if (ui.current !== tab) {
    ui.panels.get(tab).reload();
  }
  for (const [key, { panel }] of ui.panels) panel.hidden = key !== tab;
  for (const link of ui.tabs.children) link.classList.toggle("active", link.dataset.tab === tab);
  ui.current = tab;
}

// Departments: a name in any script (通风科); the server derives the slug.
function mountDepartments(panel) {
  const rows = h("tbody", { id: "dept-table" });
  const name = h("input", { type: "text", id: "dept-name", required: true, maxlength: 100, placeholder: t("dept.namePlaceholder") });
  panel.append(
    h("div", { class: "card" }, h("h2", { text: t("dept.new") }),
      h("form", { class: "row", onsubmit: async (event) => {
        event.preventDefault();
        try {
          await post("/v1/admin/departments", { name: name.value.trim() });
          toast(t("dept.createdToast", { name: name.value.trim() }));
          name.value = "";
        } catch (e) { toast(e.message, "error"); }
        load();
      } }, name, h("button", { class: "primary", type: "submit", id: "dept-create", text: t("dept.create") }))),
    h("div", { class: "card" }, h("h2", { text: t("admin.tab.departments") }),
      h("div", { class: "table-wrap" }, h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ["dept.name", "dept.members", "dept.createdAt", ""].map((k) => h("th", { text: k ? t(k) : "" })))),
        rows))));
  async function load() {
    let departments = [];
    let users = [];
    try {
      [departments, users] = await Promise.all([get("/v1/admin/departments").then((b) => b.data ?? []),
        get("/v1/admin/users").then((b) => b.data ?? [])]);
    } catch (e) { toast(e.message, "error"); return; }
    clear(rows);
    if (!departments.length) rows.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: t("dept.none") })));
    for (const d of departments) {
      const members = users.filter((u) => (u.departments ?? []).some((m) => m.id === d.id)).map((u) => u.display_name || u.username);
      rows.append(h("tr", { class: "dept-row", dataset: { name: d.name, id: d.id } },
        h("td", {}, h("b", { text: d.name })),
        h("td", { class: "small", text: members.length ? members.join("、") : "—" }),
        h("td", { class: "nowrap", text: formatTime(d.created_at) }),
        h("td", {}, h("button", { class: "icon-btn dept-delete", type: "button", title: t("common.delete"), icon: "trash",
          onclick: async () => {
            if (!confirm(t("dept.confirmDelete", { name: d.name }))) return;
            try { await del(`/v1/admin/departments/${encodeURIComponent(d.id)}`); } catch (e) { toast(e.message, "error"); }
            load();
          } }))));
    }
  }
  load();
  return load;
}

// Everyone's API keys: create one for a user (shown once), revoke any.
function mountAllKeys(panel) {
  const rows = h("tbody", { id: "all-keys" });
  const formBox = h("div");
  panel.append(
    h("div", { class: "card" }, h("h2", { text: t("keys.createFor") }), formBox),
    h("div", { class: "card" }, h("h2", { text: t("keys.all") }),
      h("div", { class: "table-wrap" }, h("table", { class: "data" }, keyTableHead(true), rows))));
  async function load() {
    let users = [];
    let keys = [];
    try {
      [users, keys] = await Promise.all([get("/v1/admin/users").then((b) => b.data ?? []), get("/v1/admin/keys").then((b) => b.data ?? [])]);
    } catch (e) { toast(e.message, "error"); return; }
    clear(formBox).append(keyForm({ prefix: "admin-key", scopes: SCOPES, users: users.filter((u) => !u.disabled),
      onCreate: (body) => post("/v1/admin/keys", body).finally(load) }));
    fillKeyTable(rows, keys, { showUser: true, onRevoke: async (key) => {
      try { await del(`/v1/admin/keys/${encodeURIComponent(key.id)}`); toast(t("keys.revokedToast")); } catch (e) { toast(e.message, "error"); }
      load();
    } });
  }
  load();
  return load;
}
