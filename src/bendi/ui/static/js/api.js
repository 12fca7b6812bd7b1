// The public HTTP APIs, as any client would call them: same origin, and either the optional API key
// (single-user mode) or the session cookie plus its CSRF token (team mode).
export class ApiError extends Error {
  constructor(message, status, retryAfter = null) { super(message); this.status = status; this.retryAfter = retryAfter; }
}

// Team mode keeps nothing in web storage: the session is an HttpOnly cookie and the CSRF token lives
// in this object only (re-read from /v1/auth/status after a reload).
const auth = { team: false, csrf: "", onUnauthorized: null };
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export function setTeamSession({ team, csrf = "", onUnauthorized = null }) {
  auth.team = team;
  auth.csrf = csrf || "";
  auth.onUnauthorized = onUnauthorized;
  if (team) localStorage.removeItem("bendi.apiKey"); // a single-user key must not linger beside a session
}
export function setCsrf(token) { auth.csrf = token || ""; }

export function apiKey() { return auth.team ? "" : localStorage.getItem("bendi.apiKey") || ""; }
export function setApiKey(key) { key ? localStorage.setItem("bendi.apiKey", key) : localStorage.removeItem("bendi.apiKey"); }

// The credentials for one request: the CSRF header on every state-changing call in team mode.
export function authHeaders(method = "GET", extra = {}) {
  const out = { ...extra };
  const key = apiKey();
  if (key) out.Authorization = `Bearer ${key}`;
  if (auth.team && auth.csrf && !SAFE_METHODS.has(method.toUpperCase())) out["X-CSRF-Token"] = auth.csrf;
  return out;
}

// A 401 in team mode means the session ended (logout elsewhere, expiry): back to the login page.
export function unauthorized(status) {
  if (status === 401 && auth.team && auth.onUnauthorized) auth.onUnauthorized();
}

async function errorFrom(response, quiet401 = false) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const error = body.error ?? body.detail;
    message = typeof error === "string" ? error : (error?.message ?? message);
  } catch { /* not JSON: keep the status line */ }
  const retry = Number(response.headers.get("Retry-After"));
  if (!quiet401) unauthorized(response.status);
  return new ApiError(message, response.status, Number.isFinite(retry) && retry > 0 ? retry : null);
}

export async function request(method, path, body, { signal, quiet401 = false } = {}) {
  const init = { method, headers: authHeaders(method), signal, credentials: "same-origin" };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorFrom(response, quiet401);
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, opts) => request("GET", path, undefined, opts);
export const post = (path, body, opts) => request("POST", path, body ?? {}, opts);
export const patch = (path, body) => request("PATCH", path, body);
export const del = (path, body) => request("DELETE", path, body);
export const put = (path, body) => request("PUT", path, body);

async function* lines(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, cut).replace(/\r$/, "");
      buffer = buffer.slice(cut + 1);
    }
  }
  if (buffer) yield buffer;
}

async function open(path, body, signal) {
  const response = await fetch(path, {
    method: "POST", signal, body: JSON.stringify(body), credentials: "same-origin",
    headers: authHeaders("POST", { "Content-Type": "application/json", Accept: "text/event-stream" }),
  });
  if (!response.ok) throw await errorFrom(response);
  return response;
}

// Server-sent events: yields each `data:` payload parsed as JSON, stops at [DONE].
export async function* sse(path, body, signal) {
  const response = await open(path, body, signal);
  for await (const line of lines(response)) {
    if (!line.startsWith("data:")) continue;
    const data = line.slice(5).trim();
    if (data === "[DONE]") return;
    if (!data) continue;
    const event = JSON.parse(data);
    if (event.error) throw new ApiError(event.error.message ?? String(event.error), 500);
    yield event;
  }
}

// Newline-delimited JSON (Ollama's streaming format).
export async function* ndjson(path, body, signal) {
  const response = await open(path, body, signal);
  for await (const line of lines(response)) {
    if (!line.trim()) continue;
    const event = JSON.parse(line);
    if (event.error) throw new ApiError(String(event.error), 500);
    yield event;
  }
}
