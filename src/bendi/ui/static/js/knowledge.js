// Knowledge bases: create, upload files/folders with per-file progress, document status, delete, chat;
// in team mode the owner's access panel.
import { h, clear, formatBytes, toast } from "./elements.js";
import { get, post, del, authHeaders, unauthorized } from "./api.js";
import { t } from "./i18n.js";
import { state, refreshKnowledgeBases, on, kbLabel } from "./state.js";
import { newChatWithKnowledgeBase } from "./chat.js";
import { isTeam, isAdmin, canCreateKnowledgeBases } from "./auth.js";
import { accessPanel } from "./access.js";

let ui = null;
let selected = null;
let pollTimer = null;
const uploads = new Map(); // file label -> {bar, status} rows for uploads in progress

const STATUS_CLASS = { indexed: "ok", unchanged: "ok", queued: "gray", processing: "warn", failed: "bad", needs_ocr: "bad", uploading: "gray" };

export function mountKnowledge(view) {
  ui = {};
  ui.name = h("input", { id: "kb-new-name", type: "text", placeholder: t("kb.namePlaceholder"), maxlength: 64 });
  ui.list = h("div", { class: "kb-list", id: "kb-list" });
  ui.detail = h("div", { id: "kb-detail" });
  const create = h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); createKb(); } },
    ui.name, h("button", { class: "primary", type: "submit", id: "kb-create", text: t("kb.create") }));
  view.append(h("div", { class: "page kb-layout" },
    h("div", {}, canCreateKnowledgeBases()
      ? h("div", { class: "card" }, h("h2", { text: t("kb.new") }), create, h("p", { class: "muted small", text: t("kb.nameHint") })) : null,
    h("div", { class: "card" }, h("h2", { text: t("kb.all") }), ui.list)),
    ui.detail));
  on("knowledgeBases", renderList);
  refreshKnowledgeBases();
  renderDetail();
  return [];
}

async function createKb() {
  const name = ui.name.value.trim();
  if (!name) return;
  try {
    // Any script: the server keeps this as the display name and derives the ASCII identifier.
    const created = await post("/v1/knowledge-bases", { name });
    ui.name.value = "";
    selected = created?.name ?? name;
    await refreshKnowledgeBases();
    renderDetail();
  } catch (e) { toast(e.message, "error"); }
}

function renderList() {
  if (!ui) return;
  clear(ui.list);
  if (!state.knowledgeBases.length) ui.list.append(h("div", { class: "muted small", text: t("kb.none") }));
  if (!selected && state.knowledgeBases.length) { selected = state.knowledgeBases[0].name; renderDetail(); }
  for (const kb of state.knowledgeBases) {
    ui.list.append(h("button", { class: `kb-item${kb.name === selected ? " active" : ""}`, type: "button", dataset: { name: kb.name },
      onclick: () => { selected = kb.name; renderList(); renderDetail(); } },
      h("span", { class: "n", text: kbLabel(kb) }),
      h("span", { class: "muted small", text: t("kb.counts", { docs: kb.documents ?? 0, chunks: kb.chunks ?? 0 }) })));
  }
}

function renderDetail() {
  clearTimeout(pollTimer);
  clear(ui.detail);
  uploads.clear();
  if (!selected) { ui.detail.append(h("div", { class: "card empty", text: t("kb.pick") })); return; }
  const kbName = selected;
  const info = state.knowledgeBases.find((kb) => kb.name === kbName) ?? { name: kbName };
  const label = kbLabel(info);
  // Team mode: a base granted read-only takes no uploads; deleting it is for its owner and admins.
  const writable = !isTeam() || isAdmin() || info.permission === undefined || ["write", "owner", "admin"].includes(info.permission);
  const fileInput = h("input", { type: "file", multiple: true, id: "kb-file-input", hidden: true, onchange: (e) => upload(kbName, [...e.target.files]) });
  const folderInput = h("input", { type: "file", multiple: true, webkitdirectory: true, hidden: true, onchange: (e) => upload(kbName, [...e.target.files]) });
  const drop = h("div", { class: "dropzone" },
    h("div", { text: t("kb.drop") }),
    h("div", { class: "row", style: null },
      h("button", { type: "button", id: "kb-pick-files", text: t("kb.pickFiles"), onclick: () => fileInput.click() }),
      h("button", { type: "button", text: t("kb.pickFolder"), onclick: () => folderInput.click() })),
    h("div", { class: "muted small", text: t("kb.formats") }), fileInput, folderInput);
  drop.querySelector(".row").classList.add("center");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(kbName, [...e.dataTransfer.files]); });
  ui.uploadRows = h("tbody");
  ui.docs = h("tbody", { id: "kb-docs" });
  const deleteButton = h("button", { class: "danger", type: "button", id: "kb-delete", text: t("kb.delete"), hidden: isTeam() && !isAdmin(),
    onclick: () => deleteKb(kbName, label) });
  ui.detail.append(
    h("div", { class: "card" },
      h("div", { class: "row" }, h("h2", { class: "kb-title", icon: "book" }, ` ${label}`),
        h("span", { class: "push-right row" },
          h("button", { class: "primary", type: "button", id: "kb-chat", text: t("kb.chat"), onclick: () => newChatWithKnowledgeBase(kbName) }),
          deleteButton)),
      label !== kbName ? h("p", { class: "muted small kb-id" }, t("kb.identifier"), h("code", { text: kbName })) : null,
      writable ? drop : h("p", { class: "muted small", id: "kb-read-only", text: t("kb.readOnly") }),
      h("div", { class: "table-wrap" }, h("table", { class: "data uploads" }, ui.uploadRows))),
    h("div", { class: "card" }, h("h2", { text: t("kb.documents") }),
      h("div", { class: "table-wrap" }, h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ["kb.file", "kb.status", "kb.pages", "kb.chunks", "kb.size", ""].map((k) => h("th", { text: k ? t(k) : "" })))),
        ui.docs))));
  if (isTeam()) ui.detail.append(accessPanel(kbName, { onManage: (may) => { deleteButton.hidden = !may; } }));
  loadDocs(kbName);
}

async function deleteKb(name, label) {
  if (!confirm(t("kb.confirmDelete", { name: label }))) return;
  try {
    await del(`/v1/knowledge-bases/${encodeURIComponent(name)}`);
    selected = null;
    await refreshKnowledgeBases();
    renderDetail();
  } catch (e) { toast(e.message, "error"); }
}

function statusBadge(doc) {
  const label = t(`kb.status.${doc.status}`);
  return h("span", { class: `badge ${STATUS_CLASS[doc.status] ?? "gray"} doc-status`, text: label, title: doc.error ?? "" });
}

async function loadDocs(kbName) {
  if (kbName !== selected) return;
  let docs = [];
  try { docs = (await get(`/v1/knowledge-bases/${encodeURIComponent(kbName)}/documents`)).data ?? []; }
  catch (e) { toast(e.message, "error"); return; }
  if (kbName !== selected) return;
  clear(ui.docs);
  if (!docs.length) ui.docs.append(h("tr", {}, h("td", { colspan: 6, class: "muted", text: t("kb.noDocs") })));
  for (const doc of docs) {
    ui.docs.append(h("tr", { class: "doc-row", dataset: { status: doc.status } },
      h("td", {}, h("div", { class: "doc-name", text: doc.file }), doc.error ? h("div", { class: "small muted", text: doc.error }) : null),
      h("td", {}, statusBadge(doc)),
      h("td", { text: doc.pages || "—" }), h("td", { text: doc.chunks ?? "—" }), h("td", { text: formatBytes(doc.bytes) }),
      h("td", {}, h("button", { class: "icon-btn", type: "button", title: t("common.delete"), icon: "trash", onclick: () => deleteDoc(kbName, doc) }))));
  }
  const busy = docs.some((d) => d.status === "queued" || d.status === "processing");
  if (busy) pollTimer = setTimeout(() => loadDocs(kbName), 1000);
  else refreshKnowledgeBases();
}

async function deleteDoc(kbName, doc) {
  if (!confirm(t("kb.confirmDeleteDoc", { name: doc.file }))) return;
  try { await del(`/v1/knowledge-bases/${encodeURIComponent(kbName)}/documents/${encodeURIComponent(doc.id)}`); loadDocs(kbName); }
  catch (e) { toast(e.message, "error"); }
}

// One request per file so each gets its own progress bar and its own error.
async function upload(kbName, files) {
  for (const file of files) {
    const label = file.webkitRelativePath || file.name;
    const bar = h("i");
    const status = h("span", { class: "badge gray", text: t("kb.status.uploading") });
    ui.uploadRows.append(h("tr", { class: "upload-row" }, h("td", {}, h("div", { class: "doc-name", text: label })),
      h("td", {}, h("div", { class: "progress" }, bar)), h("td", {}, status)));
    try {
      await sendFile(kbName, file, label, (fraction) => { bar.style.width = `${Math.round(fraction * 100)}%`; });
      bar.style.width = "100%";
      status.className = "badge ok";
      status.textContent = t("kb.uploaded");
    } catch (e) {
      status.className = "badge bad";
      status.textContent = e.message;
    }
    loadDocs(kbName);
  }
}

function sendFile(kbName, file, label, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("files", file, label);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/knowledge-bases/${encodeURIComponent(kbName)}/documents`);
    for (const [header, value] of Object.entries(authHeaders("POST"))) xhr.setRequestHeader(header, value);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText));
      else {
        unauthorized(xhr.status);
        let message = `${xhr.status}`;
        try { const body = JSON.parse(xhr.responseText); message = body.error?.message ?? body.error ?? message; } catch { /* keep status */ }
        reject(new Error(message));
      }
    };
    xhr.onerror = () => reject(new Error(t("kb.uploadFailed")));
    xhr.send(form);
  });
}
