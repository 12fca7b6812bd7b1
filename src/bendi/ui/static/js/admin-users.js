// Admin › Users: create (one-time password shown once), edit role, departments and quotas, disable,
// reset password, delete.
import { h, clear, toast, openDialog, formatCount } from "./elements.js";
import { get, post, patch, del } from "./api.js";
import { t } from "./i18n.js";
import { session } from "./auth.js";
import { departmentNames } from "./account.js";
import { showSecretOnce } from "./keys.js";

const ROLES = ["member", "kb-editor", "admin"];
let departments = [];

const field = (label, input) => h("label", { class: "field" }, h("span", { text: label }), input);
const roleSelect = (id, value = "member") => {
  const select = h("select", { id }, ROLES.map((r) => h("option", { value: r, text: t(`role.${r}`) })));
  select.value = value;
  return select;
};

// Checkboxes, one per department; returns the element and a reader for the ids ticked.
function departmentPicker(id, chosen = []) {
  const ids = new Set(chosen.map((d) => (typeof d === "string" ? d : d.id)));
  const box = h("div", { class: "check-list", id });
  if (!departments.length) box.append(h("span", { class: "muted small", text: t("users.noDepartmentsYet") }));
  for (const d of departments) {
    const input = h("input", { type: "checkbox", value: d.id, checked: ids.has(d.id) });
    box.append(h("label", { class: "check", dataset: { name: d.name } }, input, h("span", { text: d.name })));
  }
  return { box, read: () => [...box.querySelectorAll("input:checked")].map((i) => i.value) };
}

function quotaText(u) {
  const rpm = u.requests_per_minute ?? u.quota?.requests_per_minute;
  const tpd = u.tokens_per_day ?? u.quota?.tokens_per_day;
  const parts = [rpm ? t("users.rpm", { n: formatCount(rpm) }) : null, tpd ? t("users.tpd", { n: formatCount(tpd) }) : null].filter(Boolean);
  return parts.length ? parts.join(" · ") : t("users.noQuota");
}

function statusBadges(u) {
  return [
    u.disabled ? h("span", { class: "badge bad", text: t("users.disabled") }) : h("span", { class: "badge ok", text: t("users.active") }),
    u.must_change_password ? h("span", { class: "badge warn", text: t("users.mustChange") }) : null,
    u.source === "ldap" ? h("span", { class: "badge gray", text: "LDAP" }) : null,
  ];
}

export function mountUsers(panel) {
  const rows = h("tbody", { id: "users-table" });
  const formBox = h("div");
  panel.append(
    h("div", { class: "card" }, h("h2", { text: t("users.new") }), formBox),
    h("div", { class: "card" }, h("h2", { text: t("admin.tab.users") }),
      h("div", { class: "table-wrap" }, h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ["users.user", "users.role", "users.departments", "users.status", "users.quota", ""].map((k) => h("th", { text: k ? t(k) : "" })))),
        rows))));

  function renderForm() {
    const username = h("input", { type: "text", id: "user-username", required: true, maxlength: 64, autocomplete: "off", autocapitalize: "off", spellcheck: false });
    const display = h("input", { type: "text", id: "user-display", maxlength: 100, autocomplete: "off" });
    const role = roleSelect("user-role");
    const password = h("input", { type: "password", id: "user-password", autocomplete: "new-password", placeholder: t("users.passwordPlaceholder") });
    const picker = departmentPicker("user-departments");
    clear(formBox).append(h("form", { class: "form-grid", onsubmit: async (event) => {
      event.preventDefault();
      const body = { username: username.value.trim(), role: role.value, departments: picker.read() };
      if (display.value.trim()) body.display_name = display.value.trim();
      if (password.value) body.password = password.value;
      try {
        const created = await post("/v1/admin/users", body);
        toast(t("users.createdToast", { name: body.username }));
        if (created.password) showSecretOnce(t("users.oneTimeTitle", { name: body.username }), created.password, t("users.oneTimeWarning"));
        renderForm();
      } catch (e) { toast(e.message, "error"); }
      load();
    } },
    field(t("users.username"), username), field(t("users.displayName"), display), field(t("users.role"), role),
    field(t("users.password"), password),
    h("div", { class: "field wide-field" }, h("span", { text: t("users.departments") }), picker.box),
    h("div", { class: "form-actions" }, h("button", { class: "primary", type: "submit", id: "user-create", text: t("users.create") }))));
  }

  async function load() {
    let users = [];
    try {
      [users, departments] = await Promise.all([get("/v1/admin/users").then((b) => b.data ?? []),
        get("/v1/admin/departments").then((b) => b.data ?? [])]);
    } catch (e) { toast(e.message, "error"); return; }
    if (!formBox.querySelector("form") || !formBox.contains(document.activeElement)) renderForm();
    clear(rows);
    for (const u of users) rows.append(userRow(u, load));
  }
  load();
  return load;
}

function userRow(u, reload) {
  const self = u.id === session.user?.id;
  const act = async (call, done) => {
    try { const result = await call(); if (done) done(result); } catch (e) { toast(e.message, "error"); }
    reload();
  };
  return h("tr", { class: "user-row", dataset: { username: u.username, id: u.id, disabled: u.disabled ? "1" : "0" } },
    h("td", {}, h("b", { text: u.username }), u.display_name && u.display_name !== u.username ? h("div", { class: "muted small", text: u.display_name }) : null),
    h("td", {}, h("span", { class: `badge ${u.role === "admin" ? "warn" : "gray"}`, text: t(`role.${u.role}`) })),
    h("td", { class: "user-departments", text: departmentNames(u) || "—" }),
    h("td", {}, h("div", { class: "row tight" }, statusBadges(u))),
    h("td", { class: "small", text: quotaText(u) }),
    h("td", {}, h("div", { class: "row tight nowrap" },
      h("button", { class: "icon-btn user-edit", type: "button", title: t("users.edit"), icon: "edit", onclick: () => editUser(u, reload) }),
      self ? null : h("button", { class: "user-toggle", type: "button", text: u.disabled ? t("users.enable") : t("users.disable"),
        onclick: () => act(() => patch(`/v1/admin/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled })) }),
      u.source === "ldap" ? null : h("button", { class: "user-reset", type: "button", text: t("users.resetPassword"),
        onclick: () => {
          if (!confirm(t("users.confirmReset", { name: u.username }))) return;
          act(() => post(`/v1/admin/users/${encodeURIComponent(u.id)}/password`, {}),
            (body) => showSecretOnce(t("users.oneTimeTitle", { name: u.username }), body.password, t("users.oneTimeWarning")));
        } }),
      self ? null : h("button", { class: "icon-btn user-delete", type: "button", title: t("common.delete"), icon: "trash",
        onclick: () => { if (confirm(t("users.confirmDelete", { name: u.username }))) act(() => del(`/v1/admin/users/${encodeURIComponent(u.id)}`)); } }))));
}

function numberOrNull(input) { return input.value === "" ? null : Number(input.value); }

function editUser(u, reload) {
  const display = h("input", { type: "text", id: "edit-display", maxlength: 100 });
  display.value = u.display_name ?? "";
  const role = roleSelect("edit-role", u.role);
  const picker = departmentPicker("edit-departments", u.departments ?? []);
  const rpm = h("input", { type: "number", id: "edit-rpm", min: 0, step: 1, placeholder: t("users.unlimited") });
  const tpd = h("input", { type: "number", id: "edit-tpd", min: 0, step: 1000, placeholder: t("users.unlimited") });
  rpm.value = u.requests_per_minute ?? u.quota?.requests_per_minute ?? "";
  tpd.value = u.tokens_per_day ?? u.quota?.tokens_per_day ?? "";
  let dialog = null;
  const form = h("form", { class: "form-grid", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const changes = { role: role.value, departments: picker.read(), requests_per_minute: numberOrNull(rpm), tokens_per_day: numberOrNull(tpd) };
      if (display.value.trim()) changes.display_name = display.value.trim();
      await patch(`/v1/admin/users/${encodeURIComponent(u.id)}`, changes);
      toast(t("settings.saved"));
      dialog.close();
    } catch (e) { toast(e.message, "error"); }
    reload();
  } },
  field(t("users.displayName"), display), field(t("users.role"), role),
  field(t("users.rpmLabel"), rpm), field(t("users.tpdLabel"), tpd),
  h("div", { class: "field wide-field" }, h("span", { text: t("users.departments") }), picker.box),
  h("p", { class: "muted small wide-field", text: t("users.quotaHint") }),
  h("div", { class: "form-actions" }, h("button", { class: "primary", type: "submit", id: "edit-save", text: t("users.save") })));
  dialog = openDialog(t("users.editTitle", { name: u.username }), form);
}
