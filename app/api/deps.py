"""Dependencies shared by the HTTP endpoints: resources, the database transaction, principals."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kit.auth import ApiPrincipal, Participant, TokenError, decode_token, lookup_key
from app.kit.problems import Problem
from app.kit.resources import Resources


def get_resources(request: Request) -> Resources:
    res: Resources = request.app.state.resources
    return res


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_redis(res: ResourcesDep) -> Redis:
    return res.redis


RedisDep = Annotated[Redis, Depends(get_redis)]


async def get_db(res: ResourcesDep) -> AsyncIterator[AsyncConnection]:
    """One transaction per request: committed when the endpoint returns, rolled back on error.
    Services never commit."""
    async with res.engine.begin() as conn:
        yield conn


# scope="function": the commit happens before the response is sent, so a client that got a
# 2xx sees its change in its next request.
DbDep = Annotated[AsyncConnection, Depends(get_db, scope="function")]

_KEY_CACHE_S = 30.0
_key_cache: dict[str, tuple[float, ApiPrincipal | None]] = {}


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require(scope: str) -> Callable[..., Awaitable[ApiPrincipal]]:
    """An API-key dependency for one scope: 401 without or with a bad key, 403 without scope."""

    async def dependency(request: Request, res: ResourcesDep) -> ApiPrincipal:
        key = _bearer(request)
        if key is None:
            raise Problem(
                401,
                "unauthorized",
                "an API key is required: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        cached = _key_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            principal = cached[1]
        else:
            async with res.engine.connect() as conn:
                principal = await lookup_key(conn, key, res.settings.admin_key)
            _key_cache[key] = (time.monotonic() + _KEY_CACHE_S, principal)
            if len(_key_cache) > 10_000:
                _key_cache.clear()
        if principal is None:
            raise Problem(
                401,
                "unauthorized",
                "unknown or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.allows(scope):
            raise Problem(403, "forbidden", f"this key lacks the '{scope}' scope")
        return principal

    return dependency


def participant_from_request(request: Request, res: Resources) -> Participant:
    """A participant token from `Authorization: Bearer` or `?token=`."""
    token = _bearer(request) or request.query_params.get("token")
    try:
        return decode_token(token, res.settings.token_secret)
    except TokenError as exc:
        raise Problem(
            401, "unauthorized", exc.reason, headers={"WWW-Authenticate": "Bearer"}
        ) from exc


async def get_participant(request: Request, res: ResourcesDep) -> Participant:
    return participant_from_request(request, res)


ParticipantDep = Annotated[Participant, Depends(get_participant)]
