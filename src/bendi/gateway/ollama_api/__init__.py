"""Ollama-compatible API: /api/chat, /api/generate, /api/tags, /api/pull, ..."""
