"""Accounts HTTP API: sign-in, own account and keys (/v1/auth), administration (/v1/admin)."""
