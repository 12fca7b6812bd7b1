// Shared UI state (installed models, advisor verdicts, knowledge bases) and a tiny change signal.
import { get } from "./api.js";

export const state = {
  models: [],        // [{name, size, quant, params, context}]
  verdicts: new Map(), // model name -> plan row from the advisor (fits, decode_tokens_per_s, ...)
  knowledgeBases: [],
  conversationId: null,
};

const listeners = new Map();
export function on(event, fn) { (listeners.get(event) ?? listeners.set(event, []).get(event)).push(fn); }
export function emit(event, payload) { for (const fn of listeners.get(event) ?? []) fn(payload); }

export async function refreshModels() {
  const [openai, tags] = await Promise.all([get("/v1/models"), get("/api/tags").catch(() => ({ models: [] }))]);
  const byName = new Map((tags.models ?? []).map((m) => [m.name, m]));
  state.models = (openai.data ?? []).map((card) => {
    const tag = byName.get(card.id) ?? {};
    return { name: card.id, size: tag.size ?? null, quant: tag.details?.quantization_level ?? "",
      params: tag.details?.parameter_size ?? "", family: tag.details?.family ?? "" };
  });
  emit("models", state.models);
  return state.models;
}

export async function refreshVerdicts() {
  try {
    const plan = await get("/v1/plan");
    const rows = Array.isArray(plan) ? plan : (plan.plans ?? plan.data ?? []);
    const all = [...rows, ...(plan.rejected ?? []).map((r) => ({ ...r, fits: false }))];
    state.verdicts = new Map(all.filter((r) => r && r.model).map((r) => [r.model, r]));
    state.plan = plan;
  } catch {
    state.verdicts = new Map();
  }
  emit("verdicts", state.verdicts);
  return state.verdicts;
}

export async function refreshKnowledgeBases() {
  try {
    const body = await get("/v1/knowledge-bases");
    state.knowledgeBases = body.data ?? [];
  } catch {
    state.knowledgeBases = [];
  }
  emit("knowledgeBases", state.knowledgeBases);
  return state.knowledgeBases;
}

// A knowledge base as people know it: its display name (any script), else its identifier.
export const kbLabel = (kb) => kb.display_name || kb.name;

// The advisor's verdict for an installed model: its exact catalog name, else the tag's best-ranked
// quant ("deepseek-r1:7b" is pulled as the catalog's default quant of that tag).
export function verdictFor(name) {
  if (state.verdicts.has(name)) return state.verdicts.get(name);
  for (const [model, row] of state.verdicts) if (model.startsWith(`${name}-`)) return row;
  return null;
}
