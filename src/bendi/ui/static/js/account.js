// My account (team mode): who I am, change my password, my API keys, sign out.
import { h, clear, toast } from "./elements.js";
import { get, post, del } from "./api.js";
import { t } from "./i18n.js";
import { session, passwordFields, logout } from "./auth.js";
import { SCOPES, keyForm, keyTableHead, fillKeyTable } from "./keys.js";

let ui = null;

const stat = (k, v, id) => h("div", { class: "stat" }, h("div", { class: "k", text: k }), h("div", { class: "v", id, text: v || "—" }));

export function departmentNames(user) {
  return (user?.departments ?? []).map((d) => (typeof d === "string" ? d : d.name ?? d.slug ?? d.id)).join("、");
}

export function mountAccount(view) {
  ui = { profile: h("div", { class: "grid", id: "account-profile" }), keys: h("tbody", { id: "my-keys" }) };
  const user = session.user ?? {};
  const scopes = SCOPES.filter((s) => s !== "admin" || user.role === "admin");
  view.append(h("div", { class: "page" },
    h("div", { class: "card" }, h("div", { class: "row" }, h("h2", { text: t("account.profile") }),
      h("button", { class: "push-right", type: "button", id: "account-logout", icon: "logout", onclick: logout }, ` ${t("account.logout")}`)),
    ui.profile),
    user.source === "ldap" ? null : h("div", { class: "card" }, h("h2", { text: t("account.changePassword") }),
      h("div", { class: "narrow" }, passwordFields({ onDone: () => toast(t("account.passwordChanged")) }))),
    h("div", { class: "card" }, h("h2", { text: t("keys.mine") }), h("p", { class: "muted small", text: t("keys.hint") }),
      keyForm({ prefix: "my-key", scopes, onCreate: (body) => post("/v1/auth/keys", body).finally(loadKeys) }),
      h("div", { class: "table-wrap" }, h("table", { class: "data" }, keyTableHead(false), ui.keys)))));
  renderProfile();
  loadKeys();
  return [];
}

function renderProfile() {
  const user = session.user ?? {};
  clear(ui.profile).append(
    stat(t("account.displayName"), user.display_name || user.username, "account-display-name"),
    stat(t("account.username"), user.username, "account-username"),
    stat(t("account.role"), user.role ? t(`role.${user.role}`) : "", "account-role"),
    stat(t("account.departments"), departmentNames(user) || t("account.noDepartments"), "account-departments"));
}

async function loadKeys() {
  try {
    const keys = (await get("/v1/auth/keys")).data ?? [];
    fillKeyTable(ui.keys, keys, { onRevoke: async (key) => {
      try { await del(`/v1/auth/keys/${encodeURIComponent(key.id)}`); toast(t("keys.revokedToast")); } catch (e) { toast(e.message, "error"); }
      loadKeys();
    } });
  } catch (e) { toast(e.message, "error"); }
}
