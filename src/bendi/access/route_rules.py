"""The one allowlist table: what every HTTP route requires. A route missing here is refused (default deny).

Rules, weakest first:
- public: anyone, no credentials (liveness, the login exchange, the login page's static files)
- signed_in: any session or API key (reads: model lists, own conversations, bases one may read)
- account: managing one's own credentials: a web session, or an admin-scope key (an inference key
  must not mint new keys for itself)
- inference: generation and retrieval (chat, completions, embeddings, knowledge-base search/ask)
- kb:write: changing knowledge bases (with the object check in policy.py on top)
- admin: administrators only (accounts, audit, usage, model management, metrics)
Object-level checks (which knowledge base, whose conversation or key) are in policy.py, not here.
"""

from __future__ import annotations

from typing import Literal

Rule = Literal["public", "signed_in", "account", "inference", "kb:write", "admin"]

_KB = "/v1/knowledge-bases"
_UI_ASSETS = (
    "/",
    "/favicon.ico",
    "/js/{name:path}",
    "/css/{name:path}",
    "/i18n/{name:path}",
    "/icons/{name:path}",
)

ROUTE_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/health"): "public",
    ("GET", "/v1/auth/status"): "public",
    ("POST", "/v1/auth/login"): "public",
    **{("GET", path): "public" for path in _UI_ASSETS},
    # the API's own description: anyone signed in (it lists routes, not data)
    ("GET", "/openapi.json"): "signed_in",
    ("GET", "/docs"): "signed_in",
    ("GET", "/docs/oauth2-redirect"): "signed_in",
    ("GET", "/redoc"): "signed_in",
    # own account
    ("POST", "/v1/auth/logout"): "signed_in",
    ("POST", "/v1/auth/password"): "account",
    ("GET", "/v1/auth/keys"): "signed_in",
    ("POST", "/v1/auth/keys"): "account",
    ("DELETE", "/v1/auth/keys/{key_id}"): "account",
    # models: using them is for everyone, managing them for administrators
    ("GET", "/v1/models"): "signed_in",
    ("GET", "/v1/models/{model_id:path}"): "signed_in",
    ("GET", "/api/version"): "signed_in",
    ("GET", "/api/tags"): "signed_in",
    ("GET", "/api/ps"): "signed_in",
    ("POST", "/api/show"): "signed_in",
    ("POST", "/api/pull"): "admin",
    ("DELETE", "/api/delete"): "admin",
    ("POST", "/api/create"): "admin",
    # `bendi eval` reports: answers from any knowledge base, so administrators only
    ("GET", "/api/evals"): "admin",
    ("POST", "/api/evals"): "admin",
    # LoRA tuning runs: they take the machine for minutes to hours
    ("POST", "/api/tune"): "admin",
    ("GET", "/api/tune"): "admin",
    ("GET", "/api/tune/{job_id}"): "admin",
    ("DELETE", "/api/tune/{job_id}"): "admin",
    ("GET", "/api/evals/{report_id}"): "admin",
    ("GET", "/api/evals/{report_id}/html"): "admin",
    # presets are models: made and removed (/api/delete) by admins
    ("GET", "/v1/pulls"): "admin",
    ("POST", "/v1/pulls"): "admin",
    ("DELETE", "/v1/pulls/{model:path}"): "admin",
    ("GET", "/metrics"): "admin",
    ("GET", "/v1/hardware"): "signed_in",
    ("GET", "/v1/plan"): "signed_in",
    # generation
    ("POST", "/v1/chat/completions"): "inference",
    ("POST", "/v1/completions"): "inference",
    ("POST", "/v1/embeddings"): "inference",
    ("POST", "/api/chat"): "inference",
    ("POST", "/api/generate"): "inference",
    ("POST", "/api/embed"): "inference",
    ("POST", "/api/embeddings"): "inference",
    # conversations: each caller sees only their own (policy.conversation_owner)
    ("GET", "/v1/conversations"): "signed_in",
    ("POST", "/v1/conversations"): "inference",
    ("GET", "/v1/conversations/{conversation_id}"): "signed_in",
    ("PATCH", "/v1/conversations/{conversation_id}"): "inference",
    ("DELETE", "/v1/conversations/{conversation_id}"): "inference",
    ("POST", "/v1/conversations/{conversation_id}/messages"): "inference",
    ("DELETE", "/v1/conversations/{conversation_id}/messages/{message_id}"): "inference",
    # knowledge bases: the scope of readable bases is applied inside every lookup
    ("GET", _KB): "signed_in",
    ("POST", _KB): "kb:write",
    ("GET", _KB + "/{kb}"): "signed_in",
    ("DELETE", _KB + "/{kb}"): "kb:write",
    ("GET", _KB + "/{kb}/documents"): "signed_in",
    ("POST", _KB + "/{kb}/documents"): "kb:write",
    ("GET", _KB + "/{kb}/documents/{doc_id}"): "signed_in",
    ("DELETE", _KB + "/{kb}/documents/{doc_id}"): "kb:write",
    ("POST", _KB + "/{kb}/search"): "inference",
    ("POST", _KB + "/{kb}/ask"): "inference",
    ("GET", _KB + "/{kb}/access"): "signed_in",
    ("POST", _KB + "/{kb}/access"): "kb:write",
    ("DELETE", _KB + "/{kb}/access/{grant_id}"): "kb:write",
    ("GET", _KB + "/{kb}/examples"): "signed_in",
    ("POST", _KB + "/{kb}/examples"): "kb:write",
    ("DELETE", _KB + "/{kb}/examples/{example_id}"): "kb:write",
    # administration
    ("GET", "/v1/admin/users"): "admin",
    ("POST", "/v1/admin/users"): "admin",
    ("GET", "/v1/admin/users/{user_id}"): "admin",
    ("PATCH", "/v1/admin/users/{user_id}"): "admin",
    ("DELETE", "/v1/admin/users/{user_id}"): "admin",
    ("POST", "/v1/admin/users/{user_id}/password"): "admin",
    ("GET", "/v1/admin/departments"): "admin",
    ("POST", "/v1/admin/departments"): "admin",
    ("DELETE", "/v1/admin/departments/{department_id}"): "admin",
    ("GET", "/v1/admin/keys"): "admin",
    ("POST", "/v1/admin/keys"): "admin",
    ("DELETE", "/v1/admin/keys/{key_id}"): "admin",
    ("GET", "/v1/admin/usage"): "admin",
    ("GET", "/v1/admin/audit"): "admin",
    ("GET", "/v1/admin/audit/export"): "admin",
    ("GET", "/v1/admin/audit/verify"): "admin",
}

# While a generated password is unchanged, a session may do only this.
PASSWORD_CHANGE_ROUTES = frozenset({
    ("GET", "/v1/auth/status"), ("POST", "/v1/auth/password"), ("POST", "/v1/auth/logout"),
})  # fmt: skip


def rule_for(method: str, path_template: str) -> Rule | None:
    """The rule of a route; HEAD is answered like GET. None: no decision exists, so it is refused."""
    return ROUTE_RULES.get(("GET" if method == "HEAD" else method, path_template))
