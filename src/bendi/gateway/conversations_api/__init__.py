"""REST API for server-side conversations (/v1/conversations)."""
