"""Wire models of the accounts API (unknown fields are refused, so a typo never passes silently)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ScopeName = Literal["inference", "kb:write", "admin"]
RoleName = Literal["admin", "member", "kb-editor"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class NewKey(Strict):
    name: str = Field(default="API key", min_length=1, max_length=100)
    scope: ScopeName = "inference"
    expires_days: float | None = Field(default=None, gt=0, le=3650)


class NewKeyFor(NewKey):
    user_id: str = Field(min_length=1, max_length=100)


class NewUser(Strict):
    username: str = Field(min_length=1, max_length=64)
    display_name: str | None = Field(default=None, max_length=100)
    password: str | None = Field(default=None, max_length=1024)
    role: RoleName = "member"
    departments: list[str] = Field(default_factory=list, max_length=100)


class UserChanges(Strict):
    display_name: str | None = Field(default=None, max_length=100)
    role: RoleName | None = None
    disabled: bool | None = None
    departments: list[str] | None = Field(default=None, max_length=100)
    requests_per_minute: int | None = Field(default=None, ge=0, le=10**12)
    tokens_per_day: int | None = Field(default=None, ge=0, le=10**12)


class NewDepartment(Strict):
    name: str = Field(min_length=1, max_length=100)


class NewGrant(Strict):
    department: str | None = Field(default=None, max_length=100)
    user: str | None = Field(default=None, max_length=100)
    permission: Literal["read", "write"] = "read"
