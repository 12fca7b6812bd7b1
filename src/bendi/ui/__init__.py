"""Static web UI served by the gateway; it talks to the public HTTP API only."""
