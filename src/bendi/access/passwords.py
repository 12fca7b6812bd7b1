"""Password hashing (argon2id), one-time passwords and the strength rule."""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bendi.core.errors import UserInputError

# argon2-cffi's defaults (RFC 9106 "low memory": t=3, m=64 MiB, p=4) cost ~50-100 ms here: a
# deliberate price per login, never paid per API request (keys are random and checked by SHA-256).
_HASHER = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash of a random password, verified against when the user does not exist, so "no such user"
    and "wrong password" take the same time (made on first use: commands that never check a password
    do not pay for it)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


MAX_PASSWORD_CHARS = 1024


def check_strength(password: str, *, min_chars: int) -> None:
    if len(password) < min_chars:
        raise UserInputError(f"The password is too short: use at least {min_chars} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserInputError(f"The password is longer than {MAX_PASSWORD_CHARS} characters.")
    if password.strip() != password or not password.isprintable():
        raise UserInputError("The password may not start or end with spaces or contain control characters.")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; constant work whether or not there is a hash to check."""
    try:
        return _HASHER.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)


def one_time_password() -> str:
    """A generated password to hand over once (16 characters from a 57-letter alphabet: ~93 bits)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))
