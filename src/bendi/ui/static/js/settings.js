// Settings: language, API key for a protected server, and copyable API snippets for developers.
import { h, clear, copyText, toast } from "./elements.js";
import { t, language, setLanguage } from "./i18n.js";
import { apiKey, setApiKey } from "./api.js";
import { isTeam } from "./auth.js";
import { state } from "./state.js";

function snippets(base, model, key) {
  const auth = key ? `\n  -H "Authorization: Bearer ${key}" \\` : "";
  return {
    curl: `curl ${base}/v1/chat/completions \\${auth}\n  -H "Content-Type: application/json" \\\n  -d '{"model": "${model}", "messages": [{"role": "user", "content": "你好"}], "stream": true}'`,
    openai: `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}/v1", api_key="${key || "bendi"}")\nstream = client.chat.completions.create(\n    model="${model}",\n    messages=[{"role": "user", "content": "你好"}],\n    stream=True,\n)\nfor chunk in stream:\n    delta = chunk.choices[0].delta\n    print(getattr(delta, "reasoning_content", None) or delta.content or "", end="", flush=True)`,
    ollama: `from ollama import Client\n\nclient = Client(host="${base}"${key ? `, headers={"Authorization": "Bearer ${key}"}` : ""})\nfor part in client.chat(model="${model}", messages=[{"role": "user", "content": "你好"}], stream=True):\n    print(part.message.content, end="", flush=True)`,
  };
}

export function mountSettings(view) {
  const base = location.origin;
  const lang = h("select", { id: "language", onchange: async () => { await setLanguage(lang.value, { save: true }); location.reload(); } },
    h("option", { value: "zh-CN", text: "简体中文" }), h("option", { value: "en", text: "English" }));
  lang.value = language();
  const key = h("input", { type: "password", id: "api-key", autocomplete: "off", placeholder: t("settings.apiKeyPlaceholder") });
  key.value = apiKey();
  const snippetBox = h("div", { class: "snippet" });
  let tab = "curl";
  const tabs = h("div", { class: "tabs" });
  const render = () => {
    const model = state.models[0]?.name ?? "deepseek-r1:7b";
    // Team mode: keys come from My account and are never kept in the page, so the snippet shows where one goes.
    const code = snippets(base, model, isTeam() ? "YOUR_API_KEY" : apiKey())[tab];
    clear(tabs).append(...["curl", "openai", "ollama"].map((name) => h("button", { type: "button", class: name === tab ? "active" : "", text: name,
      onclick: () => { tab = name; render(); } })));
    clear(snippetBox).append(h("div", { class: "row" }, tabs,
      h("button", { class: "push-right", type: "button", id: "copy-snippet", icon: "copy", onclick: () => copyText(code).then(() => toast(t("chat.copied"))) }, ` ${t("chat.copy")}`)),
    h("pre", { id: "snippet-code" }, h("code", { text: code })));
  };
  key.addEventListener("change", () => { setApiKey(key.value.trim()); render(); toast(t("settings.saved")); });
  const urls = h("div", { class: "grid" },
    ...[["OpenAI API", `${base}/v1`], ["Ollama API", base], [t("settings.docs"), `${base}/docs`]].map(([label, url]) =>
      h("div", { class: "stat" }, h("div", { class: "k", text: label }),
        h("div", { class: "v row" }, h("code", { class: "api-url", text: url }),
          h("button", { class: "icon-btn", type: "button", icon: "copy", onclick: () => copyText(url).then(() => toast(t("chat.copied"))) })))));
  view.append(h("div", { class: "page" },
    h("div", { class: "card" }, h("h2", { text: t("settings.general") }),
      h("div", { class: "grid" }, h("label", { class: "field" }, h("span", { text: t("settings.language") }), lang),
        isTeam() ? h("p", { class: "muted small", text: t("settings.teamKeys") }) : h("label", { class: "field" }, h("span", { text: t("settings.apiKey") }), key))),
    h("div", { class: "card" }, h("h2", { text: t("settings.api") }), h("p", { class: "muted small", text: t("settings.apiHint") }), urls),
    h("div", { class: "card" }, h("h2", { text: t("settings.snippets") }), snippetBox)));
  render();
  return [];
}
