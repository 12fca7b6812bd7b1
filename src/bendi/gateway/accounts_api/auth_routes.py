"""Sign-in, sign-out, the caller's own account and API keys (/v1/auth)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bendi.access.accounts import User
from bendi.access.passwords import check_strength
from bendi.core.errors import BendiError, ForbiddenError, UserInputError
from bendi.gateway.accounts_api.protocol import LoginRequest, NewKey, PasswordChange
from bendi.gateway.audit_hooks import client_address, record_action
from bendi.gateway.auth import SESSION_COOKIE
from bendi.gateway.dependencies import get_services, principal_of
from bendi.services import Services

router = APIRouter(prefix="/v1/auth", tags=["accounts"])
ServicesDep = Annotated[Services, Depends(get_services)]


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _user_json(services: Services, request: Request) -> dict[str, Any] | None:
    principal = principal_of(request)
    if principal.kind != "user" or principal.user_id is None:
        return None
    user: dict[str, Any] = services.access.accounts.user(principal.user_id).to_json()
    return user


@router.get("/status", summary="Mode (single or team), and who is signed in")
async def status(request: Request, services: ServicesDep) -> dict[str, Any]:
    access = services.access
    team = access.team_mode
    session = request.scope.get("state", {}).get("web_session")
    principal = request.scope.get("state", {}).get("principal")
    user = _user_json(services, request) if team and principal is not None else None
    return {"mode": "team" if team else "single", "authenticated": (not team) or principal is not None,
            "user": user, "csrf_token": session.csrf_token if session else None,
            "must_change_password": bool(user and user["must_change_password"]),
            "ldap": team and access.authenticator.ldap_enabled, "tls": _secure(request)}  # fmt: skip


@router.post("/login", summary="Sign in; sets the session cookie", responses={401: {}, 429: {}})
async def login(body: LoginRequest, request: Request, services: ServicesDep) -> Response:
    access = services.access
    if not access.team_mode:
        raise UserInputError("bendi is in single-user mode: there is nothing to sign in to.")
    address = client_address(request.scope)
    try:
        done = await run_in_threadpool(access.authenticator.login, body.username, body.password, address)
    except BendiError as exc:
        record_action(request, "auth.login_failed", actor="", status=exc.http_status,
                      attempted_username=body.username[:64])  # fmt: skip
        raise
    record_action(request, "auth.login", actor=done.user.username, user_id=done.user.id)
    response = JSONResponse({"user": done.user.to_json(), "csrf_token": done.session.csrf_token,
                             "must_change_password": done.user.must_change_password})  # fmt: skip
    response.set_cookie(SESSION_COOKIE, done.cookie_value, httponly=True, samesite="strict", path="/",
                        secure=_secure(request), max_age=services.settings.session_max_hours * 3600)  # fmt: skip
    return response


@router.post("/logout", summary="Sign out: ends this session and clears the cookie")
async def logout(request: Request, services: ServicesDep) -> Response:
    session = request.scope.get("state", {}).get("web_session")
    if session is not None:
        await run_in_threadpool(services.access.sessions.end, session.id)
        record_action(request, "auth.logout")
    response = JSONResponse({"ok": True})
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


@router.post("/password", summary="Change your password (your other sessions end)")
async def change_password(body: PasswordChange, request: Request, services: ServicesDep) -> dict[str, Any]:
    principal = principal_of(request)
    if principal.kind != "user" or principal.user_id is None:
        raise UserInputError("Only signed-in users have a password to change.")
    accounts = services.access.accounts
    found = accounts.user_for_login(principal.username)
    if found is None or found[0].source != "local":
        raise UserInputError("This account's password is managed by the directory (LDAP); change it there.")
    user, stored = found
    address = client_address(request.scope)
    if not await run_in_threadpool(
        services.access.authenticator.check_current_password, user, stored, body.current_password, address
    ):
        # 400, not 401: the session is fine, only the typed password is wrong
        raise UserInputError("The current password is wrong.")
    if body.new_password == body.current_password:
        raise UserInputError("The new password must differ from the current one.")
    check_strength(body.new_password, min_chars=accounts.min_password_chars)
    await run_in_threadpool(lambda: accounts.set_password(user.id, body.new_password, must_change=False,
                                                          keep_session=principal.session_id))  # fmt: skip
    record_action(request, "auth.password_change")
    return {"ok": True}


@router.get("/keys", summary="Your API keys (never their secrets)")
async def my_keys(request: Request, services: ServicesDep) -> dict[str, Any]:
    principal = principal_of(request)
    if principal.user_id is None:
        return {"data": []}
    return {"data": [k.to_json() for k in services.access.keys.list(principal.user_id)]}


@router.post("/keys", status_code=201, summary="Create an API key for yourself; the key is shown only now")
async def create_my_key(body: NewKey, request: Request, services: ServicesDep) -> dict[str, Any]:
    principal = principal_of(request)
    if principal.user_id is None:
        raise ForbiddenError("Keys belong to users: sign in (team mode) to create one.")
    return await issue_key(request, services, services.access.accounts.user(principal.user_id), body)


async def issue_key(request: Request, services: Services, user: User, body: NewKey) -> dict[str, Any]:
    """Create a key for `user`, audit it, and answer with the secret (the only time it is shown)."""
    secret, info = await run_in_threadpool(
        lambda: services.access.keys.create(
            user, name=body.name, scope=body.scope, expires_days=body.expires_days
        )
    )
    record_action(request, "key.create", key=info.id, scope=info.scope, owner=user.username)
    return {"key": secret, **info.to_json()}


@router.delete("/keys/{key_id}", summary="Revoke one of your API keys (at once)")
async def revoke_my_key(key_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    principal = principal_of(request)
    owner = principal.user_id or "-"  # only users own keys; anyone else finds none
    info = await run_in_threadpool(lambda: services.access.keys.revoke(key_id[:64], owner_id=owner))
    record_action(request, "key.revoke", key=info.id, owner=info.username)
    return info.to_json()
