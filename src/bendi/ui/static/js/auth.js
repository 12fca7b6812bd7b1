// Team mode sign-in: reads /v1/auth/status, shows the login page, forces a first password change, logs out.
import { h, clear } from "./elements.js";
import { get, post, setTeamSession, setCsrf } from "./api.js";
import { t, language, setLanguage } from "./i18n.js";

// Who is signed in. Nothing here is ever written to web storage.
export const session = { mode: "single", user: null, ldap: false, tls: false };

export const isTeam = () => session.mode === "team";
// Single-user mode has one person with every right.
export const isAdmin = () => !isTeam() || session.user?.role === "admin";
export const canCreateKnowledgeBases = () => !isTeam() || ["admin", "kb-editor"].includes(session.user?.role);

let screen = null;    // the #login element
let ended = false;    // a 401 already sent us back to the login page

function show(which) {
  document.body.dataset.screen = which;
  document.getElementById("app").hidden = which !== "app";
  screen.hidden = which === "app";
}

function languagePicker(rerender) {
  const select = h("select", { id: "login-language", "aria-label": t("settings.language"),
    onchange: async () => { await setLanguage(select.value, { save: true }); rerender(); } },
  h("option", { value: "zh-CN", text: "简体中文" }), h("option", { value: "en", text: "English" }));
  select.value = language();
  return select;
}

function frame(title, subtitle, form, rerender) {
  clear(screen).append(h("div", { class: "login-card card" },
    h("div", { class: "brand login-brand" }, h("img", { src: "icons/bendi.svg", alt: "", width: 36, height: 36 }),
      h("span", { class: "brand-name", text: "bendi " }, h("b", { text: "本地" })), languagePicker(rerender)),
    h("h2", { class: "login-title", text: title }),
    subtitle ? h("p", { class: "muted small", text: subtitle }) : null,
    form));
}

function field(label, input) {
  return h("label", { class: "field" }, h("span", { text: label }), input);
}

// The error box: the server's sentence as it came. Throttled (429): the button counts down the wait.
function showError(box, error, button) {
  box.hidden = false;
  box.textContent = error.message;
  if (error.status !== 429) return;
  const label = button.textContent;
  let left = Math.ceil(error.retryAfter ?? 30);
  box.dataset.retryAfter = String(left);
  const tick = () => {
    if (left <= 0) { button.disabled = false; button.textContent = label; return; }
    button.disabled = true;
    button.textContent = t("login.throttled", { seconds: left });
    left -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}

function loginForm(done, notice = "") {
  const render = () => loginForm(done, notice);
  const username = h("input", { type: "text", id: "login-username", autocomplete: "username", required: true, autocapitalize: "off", spellcheck: false });
  const password = h("input", { type: "password", id: "login-password", autocomplete: "current-password", required: true });
  const error = h("div", { id: "login-error", class: "form-error", role: "alert", hidden: !notice, text: notice });
  const submit = h("button", { class: "primary wide", type: "submit", id: "login-submit", text: t("login.submit") });
  const form = h("form", { id: "login-form", class: "login-form", onsubmit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const body = await post("/v1/auth/login", { username: username.value.trim(), password: password.value }, { quiet401: true });
      session.user = body.user;
      setCsrf(body.csrf_token);
      const typed = password.value;
      password.value = "";
      if (body.must_change_password) passwordForm(done, { forced: true, current: typed });
      else done();
    } catch (e) {
      submit.disabled = false;
      showError(error, e, submit);
      password.value = "";
      password.focus();
    }
  } }, field(t("login.username"), username), field(t("login.password"), password), error, submit,
  session.ldap ? h("p", { class: "muted small", text: t("login.ldapHint") }) : null);
  frame(t("login.title"), t("login.subtitle"), form, render);
  show("login");
  username.focus();
}

// The change-password form: forced after a one-time password (full page), or inside My account.
export function passwordFields({ current = "", onDone, submitLabel }) {
  const currentInput = h("input", { type: "password", id: "pw-current", autocomplete: "current-password", required: true });
  currentInput.value = current;
  const next = h("input", { type: "password", id: "pw-new", autocomplete: "new-password", required: true });
  const repeat = h("input", { type: "password", id: "pw-repeat", autocomplete: "new-password", required: true });
  const error = h("div", { id: "pw-error", class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { class: "primary", type: "submit", id: "pw-submit", text: submitLabel ?? t("account.changePassword") });
  const form = h("form", { id: "password-form", class: "login-form", onsubmit: async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (next.value !== repeat.value) { showError(error, new Error(t("account.passwordsDiffer")), submit); return; }
    submit.disabled = true;
    try {
      await post("/v1/auth/password", { current_password: currentInput.value, new_password: next.value }, { quiet401: true });
      for (const input of [currentInput, next, repeat]) input.value = "";
      submit.disabled = false;
      onDone();
    } catch (e) {
      submit.disabled = false;
      showError(error, e, submit);
    }
  } },
  // A password just typed on the login page is not asked for again.
  current ? null : field(t("account.currentPassword"), currentInput),
  field(t("account.newPassword"), next), field(t("account.repeatPassword"), repeat), error, submit);
  if (current) { currentInput.hidden = true; form.prepend(currentInput); }
  return form;
}

function passwordForm(done, { forced, current = "" }) {
  const render = () => passwordForm(done, { forced, current });
  const form = passwordFields({ current, submitLabel: t("account.setPassword"), onDone: async () => {
    const status = await readStatus(); // the server may have rotated the session's CSRF token
    if (status.csrf_token) setCsrf(status.csrf_token);
    done();
  } });
  frame(t("account.mustChange"), forced ? t("account.mustChangeHint") : "", form, render);
  show("password");
  form.querySelector("input:not([hidden])")?.focus();
}

async function readStatus() {
  let status;
  try { status = await get("/v1/auth/status", { quiet401: true }); }
  catch { status = { mode: "single" }; } // a server without accounts: single-user, as before
  session.mode = status.mode === "team" ? "team" : "single";
  session.ldap = Boolean(status.ldap);
  session.tls = Boolean(status.tls);
  session.user = status.authenticated ? status.user : null;
  return status;
}

// Resolves once the app may start: single-user mode, or a signed-in user with a password of their own.
export async function signIn() {
  screen = document.getElementById("login");
  const status = await readStatus();
  if (!isTeam()) { setTeamSession({ team: false }); show("app"); return; }
  setTeamSession({ team: true, csrf: status.csrf_token, onUnauthorized: sessionEnded });
  if (status.authenticated && !status.must_change_password) { show("app"); return; }
  await new Promise((resolve) => {
    if (status.authenticated) passwordForm(resolve, { forced: true });
    else loginForm(resolve);
  });
  show("app");
}

// A call answered 401: the session expired or ended elsewhere. Sign in again, then start afresh.
function sessionEnded() {
  if (ended) return;
  ended = true;
  session.user = null;
  loginForm(() => location.reload(), t("login.sessionEnded"));
}

export async function logout() {
  ended = true; // calls still in flight will answer 401: that is this logout, not an expired session
  try { await post("/v1/auth/logout", {}, { quiet401: true }); } catch { /* the session is gone either way */ }
  location.reload();
}
