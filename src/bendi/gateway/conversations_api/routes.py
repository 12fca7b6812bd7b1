"""Conversation routes: list/search, create, read, update (rename, settings), delete, append, truncate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from bendi.conversations import ConversationStore
from bendi.gateway.conversations_api.protocol import ConversationFields, NewMessage
from bendi.gateway.dependencies import get_services, principal_of
from bendi.services import Services

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])
ServicesDep = Annotated[Services, Depends(get_services)]


def _store(services: ServicesDep) -> ConversationStore:
    return services.conversations


StoreDep = Annotated[ConversationStore, Depends(_store)]


def _owner(request: Request, services: ServicesDep) -> str | None:
    """Whose conversations this caller sees (the policy decides; normally only their own)."""
    return services.access.policy.conversation_owner(principal_of(request))


OwnerDep = Annotated[str | None, Depends(_owner)]


@router.get("", summary="List conversations, newest first; `q` searches titles and message text")
async def list_conversations(
    store: StoreDep, owner: OwnerDep, q: Annotated[str, Query(max_length=200)] = "", limit: int = 200
) -> dict[str, Any]:
    found = await run_in_threadpool(store.search, owner, query=q, limit=limit)
    return {"object": "list", "data": [c.to_json() for c in found]}


@router.post("", status_code=201, summary="Create a conversation")
async def create_conversation(body: ConversationFields, request: Request, store: StoreDep) -> dict[str, Any]:
    mine = principal_of(request).owner_id
    created = await run_in_threadpool(lambda: store.create(mine, **body.model_dump(exclude_none=True)))
    return created.to_json(with_messages=True)


@router.get("/{conversation_id}", summary="A conversation with its messages")
async def get_conversation(conversation_id: str, store: StoreDep, owner: OwnerDep) -> dict[str, Any]:
    found = await run_in_threadpool(store.get, conversation_id, owner)
    return found.to_json(with_messages=True)


@router.patch("/{conversation_id}", summary="Rename or change model, system prompt, temperature, context, KB")
async def update_conversation(
    conversation_id: str, body: ConversationFields, store: StoreDep, owner: OwnerDep
) -> dict[str, Any]:
    # Fields sent as null clear the setting; fields left out stay as they are.
    changes = body.model_dump(exclude_unset=True)
    updated = await run_in_threadpool(lambda: store.update(conversation_id, owner, **changes))
    return updated.to_json(with_messages=True)


@router.delete("/{conversation_id}", summary="Delete a conversation and its messages")
async def delete_conversation(conversation_id: str, store: StoreDep, owner: OwnerDep) -> dict[str, Any]:
    await run_in_threadpool(store.delete, conversation_id, owner)
    return {"id": conversation_id, "deleted": True}


@router.post("/{conversation_id}/messages", status_code=201, summary="Append a message")
async def add_message(
    conversation_id: str, body: NewMessage, store: StoreDep, owner: OwnerDep
) -> dict[str, Any]:
    added = await run_in_threadpool(lambda: store.add_message(conversation_id, owner, **body.model_dump()))
    return added.to_json()


@router.delete(
    "/{conversation_id}/messages/{message_id}",
    summary="Delete a message and every later one (edit-and-resend, regenerate)",
)
async def truncate_messages(
    conversation_id: str, message_id: str, store: StoreDep, owner: OwnerDep
) -> dict[str, Any]:
    updated = await run_in_threadpool(store.truncate, conversation_id, owner, message_id)
    return updated.to_json(with_messages=True)
