// API keys on screen: the create form, the list with revoke, and the dialog that shows a secret once.
import { h, clear, copyText, toast, openDialog, formatTime } from "./elements.js";
import { t } from "./i18n.js";

export const SCOPES = ["inference", "kb:write", "admin"];

// A new key or one-time password is shown exactly once: copy it now, the server keeps only a hash.
export function showSecretOnce(title, secret, warning) {
  const { dialog } = openDialog(title,
    h("p", { class: "notice warn", text: warning }),
    h("div", { class: "secret-row" }, h("code", { class: "secret", id: "secret-value", text: secret }),
      h("button", { type: "button", id: "secret-copy", icon: "copy",
        onclick: () => copyText(secret).then(() => toast(t("chat.copied"))) }, ` ${t("chat.copy")}`)));
  dialog.classList.add("secret-dialog");
}

const userLabel = (u) => (u.display_name && u.display_name !== u.username ? `${u.display_name} (${u.username})` : u.username);

// prefix keeps element ids apart between My account and the admin screen.
export function keyForm({ prefix, scopes, users = null, onCreate }) {
  const name = h("input", { type: "text", id: `${prefix}-name`, required: true, maxlength: 100, placeholder: t("keys.namePlaceholder") });
  const scope = h("select", { id: `${prefix}-scope` }, scopes.map((s) => h("option", { value: s, text: t(`keys.scope.${s}`) })));
  const days = h("input", { type: "number", id: `${prefix}-days`, min: 1, max: 3650, step: 1, placeholder: t("keys.never") });
  const user = users ? h("select", { id: `${prefix}-user`, required: true }, users.map((u) => h("option", { value: u.id, text: userLabel(u) }))) : null;
  const submit = h("button", { class: "primary", type: "submit", id: `${prefix}-create`, text: t("keys.create") });
  return h("form", { class: "form-grid", onsubmit: async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), scope: scope.value };
    if (days.value) body.expires_days = Number(days.value);
    if (user) body.user_id = user.value;
    submit.disabled = true;
    try {
      const created = await onCreate(body);
      name.value = "";
      days.value = "";
      showSecretOnce(t("keys.created", { name: created.name ?? body.name }), created.key, t("keys.onceWarning"));
    } catch (e) { toast(e.message, "error"); }
    submit.disabled = false;
  } },
  user ? h("label", { class: "field" }, h("span", { text: t("keys.user") }), user) : null,
  h("label", { class: "field" }, h("span", { text: t("keys.name") }), name),
  h("label", { class: "field" }, h("span", { text: t("keys.scope") }), scope),
  h("label", { class: "field" }, h("span", { text: t("keys.expiresDays") }), days),
  h("div", { class: "form-actions" }, submit));
}

function keyState(key) {
  if (key.revoked_at) return h("span", { class: "badge bad", text: t("keys.revoked") });
  const expires = key.expires_at ? new Date(typeof key.expires_at === "number" ? key.expires_at * 1000 : key.expires_at) : null;
  if (expires && expires < new Date()) return h("span", { class: "badge gray", text: t("keys.expired") });
  return h("span", { class: "badge ok", text: t("keys.active") });
}

export function keyTableHead(showUser) {
  const columns = [showUser ? "keys.user" : null, "keys.name", "keys.prefix", "keys.scope", "keys.createdAt", "keys.expiresAt",
    "keys.lastUsed", "keys.state", ""].filter((c) => c !== null);
  return h("thead", {}, h("tr", {}, columns.map((k) => h("th", { text: k ? t(k) : "" }))));
}

export function fillKeyTable(tbody, keys, { showUser = false, onRevoke }) {
  clear(tbody);
  if (!keys.length) tbody.append(h("tr", {}, h("td", { colspan: showUser ? 9 : 8, class: "muted", text: t("keys.none") })));
  for (const key of keys) {
    tbody.append(h("tr", { class: "key-row", dataset: { id: key.id, name: key.name ?? "" } },
      showUser ? h("td", { text: key.username ?? "—" }) : null,
      h("td", {}, h("b", { text: key.name || "—" })),
      h("td", {}, h("code", { class: "key-prefix", text: key.prefix ? `${key.prefix}…` : "—" })),
      h("td", { text: key.scope ? t(`keys.scope.${key.scope}`) : "—" }),
      h("td", { class: "nowrap", text: formatTime(key.created_at) }),
      h("td", { class: "nowrap", text: key.expires_at ? formatTime(key.expires_at) : t("keys.never") }),
      h("td", { class: "nowrap", text: key.last_used_at ? formatTime(key.last_used_at) : t("keys.neverUsed") }),
      h("td", {}, keyState(key)),
      h("td", {}, key.revoked_at ? null : h("button", { class: "danger key-revoke", type: "button", text: t("keys.revoke"),
        onclick: () => { if (confirm(t("keys.confirmRevoke", { name: key.name || key.prefix }))) onRevoke(key); } }))));
  }
}
