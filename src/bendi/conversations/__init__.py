"""Server-side chat conversations for the web UI (and any client): a small SQLite store."""

from bendi.conversations.store import Conversation, ConversationStore, Message

__all__ = ["Conversation", "ConversationStore", "Message"]
