// Rendering one chat message: user bubble, or assistant answer with its reasoning block and citations.
import { h, clear, copyText, openDialog, toast } from "./elements.js";
import { renderMarkdown } from "./markdown.js";
import { t } from "./i18n.js";

export function showCitation(citation) {
  const where = [citation.file, citation.page ? t("kb.page", { n: citation.page }) : null, citation.article, citation.heading]
    .filter(Boolean).join(" · ");
  openDialog(`[${citation.index}] ${citation.file ?? ""}`,
    h("div", { class: "muted small cite-where", text: where }),
    h("div", { class: "passage", text: citation.text ?? "" }));
}

function citationChips(citations) {
  if (!citations || !citations.length) return null;
  return h("div", { class: "citations" }, citations.map((c) => {
    const label = `[${c.index}] ${c.file ?? ""}${c.page ? ` p.${c.page}` : ""}${c.article ? ` ${c.article}` : ""}`;
    return h("button", { class: "chip", type: "button", title: label, text: label, onclick: () => showCitation(c) });
  }));
}

// An assistant message view that can be updated while it streams.
export class AssistantView {
  constructor({ model, onRegenerate }) {
    this.reasoning = "";
    this.content = "";
    this.citations = null;
    this.el = h("div", { class: "msg assistant streaming" });
    this.who = h("div", { class: "who" }, h("span", { class: "badge gray", text: model || "" }));
    this.tools = h("span", { class: "tools" },
      h("button", { class: "icon-btn", type: "button", title: t("chat.copy"), icon: "copy", onclick: () => this.copy() }),
      onRegenerate ? h("button", { class: "icon-btn regenerate", type: "button", title: t("chat.regenerate"), icon: "refresh", onclick: onRegenerate }) : null);
    this.who.append(this.tools);
    this.reasoningBlock = h("details", { class: "reasoning", open: true, hidden: true },
      h("summary", {}, h("span", { class: "reasoning-title", text: t("chat.thinking") })),
      h("div", { class: "reasoning-body" }));
    this.body = h("div", { class: "bubble" }, h("span", { class: "typing" }, h("i"), h("i"), h("i")));
    this.citationBox = h("div");
    this.el.append(this.who, this.reasoningBlock, this.body, this.citationBox);
    this.pending = false;
  }

  update({ reasoning = "", content = "", citations = null }) {
    this.reasoning += reasoning;
    this.content += content;
    if (citations) this.citations = citations;
    if (!this.pending) {
      this.pending = true;
      // A frame still pending when the answer ends must not repaint it as streaming: that wiped
      // the "stopped" note (and brought the cursor back) after finish().
      requestAnimationFrame(() => { this.pending = false; if (!this.finished) this.paint(true); });
    }
  }

  paint(streaming) {
    if (this.reasoning) {
      this.reasoningBlock.hidden = false;
      this.reasoningBlock.querySelector(".reasoning-body").textContent = this.reasoning.trim();
      // Open while the model is still thinking; folded once the answer starts and after.
      if (streaming && !this.content) this.reasoningBlock.open = true;
      if (!streaming || this.content) {
        if (this.reasoningBlock.dataset.folded !== "1") { this.reasoningBlock.open = false; this.reasoningBlock.dataset.folded = "1"; }
      }
      this.reasoningBlock.querySelector(".reasoning-title").textContent =
        streaming && !this.content ? t("chat.thinkingLive") : t("chat.thinking");
    }
    if (this.content || !streaming) {
      const options = { citationCount: this.citations?.length ?? 0, onCite: (n) => {
        const c = this.citations.find((x) => x.index === n) ?? this.citations[n - 1];
        if (c) showCitation(c);
      } };
      const rendered = renderMarkdown(this.content, options);
      if (streaming) rendered.classList.add("cursor");
      clear(this.body).append(rendered);
    }
    clear(this.citationBox);
    const chips = citationChips(this.citations);
    if (chips) this.citationBox.append(chips);
  }

  finish({ error = null, stopped = false } = {}) {
    this.finished = true;
    this.el.classList.remove("streaming");
    this.paint(false);
    if (stopped) this.body.append(h("div", { class: "muted small", text: t("chat.stopped") }));
    if (error) this.body.append(h("div", { class: "error", text: error }));
  }

  copy() { copyText(this.content).then(() => toast(t("chat.copied"))); }
}

export function assistantFromStored(message, onRegenerate) {
  const view = new AssistantView({ model: message.model, onRegenerate });
  view.reasoning = message.reasoning ?? "";
  view.content = message.content ?? "";
  view.citations = message.citations ?? null;
  view.finish();
  view.el.dataset.id = message.id;
  return view;
}

export function userView(message, { onEdit }) {
  const bubble = h("div", { class: "bubble", text: message.content });
  const el = h("div", { class: "msg user", dataset: { id: message.id ?? "" } }, bubble);
  const tools = h("span", { class: "tools" },
    h("button", { class: "icon-btn", type: "button", title: t("chat.copy"), icon: "copy",
      onclick: () => copyText(message.content).then(() => toast(t("chat.copied"))) }),
    onEdit ? h("button", { class: "icon-btn edit", type: "button", title: t("chat.edit"), icon: "edit", onclick: () => startEdit() }) : null);
  el.append(tools);
  function startEdit() {
    const area = h("textarea", { class: "edit-area", rows: 3 });
    area.value = message.content;
    const form = h("div", { class: "bubble edit-box" }, area,
      h("div", { class: "row" },
        h("button", { class: "primary", type: "button", text: t("chat.resend"), onclick: () => onEdit(area.value) }),
        h("button", { type: "button", text: t("common.cancel"), onclick: () => { form.replaceWith(bubble); tools.hidden = false; } })));
    bubble.replaceWith(form);
    tools.hidden = true;
    area.focus();
  }
  return el;
}
