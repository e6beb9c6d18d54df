"""Participant tokens (JWT HS256) and API keys with scopes (CONTRACT.md "Auth")."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kit.db import api_keys

Role = Literal["learner", "instructor", "assistant", "mentor", "observer"]
ROLES: frozenset[str] = frozenset({"learner", "instructor", "assistant", "mentor", "observer"})
SCOPES: frozenset[str] = frozenset(
    {"schedule:write", "events:import", "results:read", "excuses:write", "admin"}
)


class TokenError(Exception):
    """A participant token that must be refused; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Participant:
    user_id: str
    session_id: str | None
    role: str
    name: str | None
    exp: float


def decode_token(token: str | None, secret: str) -> Participant:
    """Verify a participant token: signature, expiry, and the claims the contract names."""
    if not token:
        raise TokenError("missing token")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["sub", "exp", "role"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("bad token signature") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    sub, role, sid = claims.get("sub"), claims.get("role"), claims.get("sid")
    if not isinstance(sub, str) or not sub:
        raise TokenError("token has no subject")
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}")
    if sid is not None and not isinstance(sid, str):
        raise TokenError("sid must be a string")
    name = claims.get("name")
    return Participant(
        user_id=sub,
        session_id=sid,
        role=str(role),
        name=name if isinstance(name, str) else None,
        exp=float(claims["exp"]),
    )


def issue_token(
    secret: str,
    *,
    user_id: str,
    role: str,
    session_id: str | None,
    exp: float,
    name: str | None = None,
) -> str:
    """Mint a participant token (the LMS does this in production; the demo and tests here)."""
    claims: dict[str, Any] = {"sub": user_id, "role": role, "exp": int(exp)}
    if session_id is not None:
        claims["sid"] = session_id
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm="HS256")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "hdr_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class ApiPrincipal:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


async def create_key(conn: AsyncConnection, name: str, scopes: list[str]) -> str:
    """Store a new key (hashed) and return the only copy of it in clear."""
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise ValueError(
            f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}"
        )
    if not scopes:
        raise ValueError("at least one scope is required")
    key = new_key()
    await conn.execute(insert(api_keys).values(name=name, key_hash=hash_key(key), scopes=scopes))
    return key


async def lookup_key(conn: AsyncConnection, key: str, admin_key: str | None) -> ApiPrincipal | None:
    if admin_key and hmac.compare_digest(key.encode(), admin_key.encode()):
        return ApiPrincipal(name="admin", scopes=SCOPES)
    row = (
        await conn.execute(
            select(api_keys.c.name, api_keys.c.scopes).where(
                api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return None
    return ApiPrincipal(name=row.name, scopes=frozenset(row.scopes))
