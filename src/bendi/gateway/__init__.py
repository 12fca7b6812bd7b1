"""The only layer that knows HTTP: OpenAI- and Ollama-compatible APIs, knowledge API, UI, metrics."""
