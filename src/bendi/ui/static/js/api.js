// The public HTTP APIs, as any client would call them (same origin; an optional API key).
export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

export function apiKey() { return localStorage.getItem("bendi.apiKey") || ""; }
export function setApiKey(key) { key ? localStorage.setItem("bendi.apiKey", key) : localStorage.removeItem("bendi.apiKey"); }

function headers(extra = {}) {
  const out = { ...extra };
  const key = apiKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const error = body.error ?? body.detail;
    message = typeof error === "string" ? error : (error?.message ?? message);
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(message, response.status);
}

export async function request(method, path, body, { signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, opts) => request("GET", path, undefined, opts);
export const post = (path, body, opts) => request("POST", path, body ?? {}, opts);
export const patch = (path, body) => request("PATCH", path, body);
export const del = (path, body) => request("DELETE", path, body);

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
    method: "POST", signal, body: JSON.stringify(body),
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
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
