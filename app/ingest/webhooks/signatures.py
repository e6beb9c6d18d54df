"""Signature schemes of the meeting-platform webhooks: pure functions, no I/O, time a parameter.

Every check works on the raw request body exactly as received: re-serialising the JSON (other
whitespace, other key order) changes the bytes and fails the check, as it must. Comparisons of
secrets-derived values are constant-time (`hmac.compare_digest`).

- Zoom: `x-zm-signature: v0=<hex HMAC-SHA256(secret, "v0:{x-zm-request-timestamp}:{body}")>`,
  the timestamp (POSIX seconds) within `TOLERANCE_S` of now.
- LiveKit: `Authorization: [Bearer ]<JWT HS256 signed with the API secret, iss = API key>`
  whose `sha256` claim is the standard base64 SHA-256 of the body (livekit/protocol
  `webhook/verifier.go`).
- Standard Webhooks (https://www.standardwebhooks.com/): `webhook-signature` holds
  space-separated `v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`
  where the key is the base64-decoded part of a `whsec_…` secret; any valid signature of any
  configured secret is accepted, which is how secrets are rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from typing import Any

import jwt

TOLERANCE_S = 300.0
# Clock skew allowed on a LiveKit token's `exp` / `nbf` (its own lifetime is minutes).
LIVEKIT_LEEWAY_S = 10.0


class SignatureError(Exception):
    """The request is not proven to come from the platform; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _within(timestamp: str | None, now: float, tolerance: float, header: str) -> None:
    if not timestamp:
        raise SignatureError(f"missing {header} header")
    try:
        value = int(timestamp.strip())
    except ValueError:
        raise SignatureError(f"{header} is not an integer timestamp") from None
    if abs(now - value) > tolerance:
        raise SignatureError(f"{header} is more than {int(tolerance)} s from the server's time")


# --- Zoom -------------------------------------------------------------------------------------


def zoom_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `x-zm-signature` value Zoom sends for `body` at `timestamp`."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_zoom(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float,
    tolerance: float = TOLERANCE_S,
) -> None:
    """Raise `SignatureError` unless `signature` signs `body` at a timestamp close to `now`."""
    if not signature:
        raise SignatureError("missing x-zm-signature header")
    _within(timestamp, now, tolerance, "x-zm-request-timestamp")
    assert timestamp is not None
    expected = zoom_signature(secret, timestamp.strip(), body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureError("x-zm-signature does not match the body")


def zoom_url_validation(secret: str, plain_token: str) -> dict[str, str]:
    """The answer to Zoom's `endpoint.url_validation` challenge."""
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}


# --- LiveKit ----------------------------------------------------------------------------------


def body_sha256(body: bytes) -> str:
    """LiveKit's `sha256` claim: standard base64 (with padding) of the body's SHA-256."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def livekit_token(
    api_key: str, api_secret: str, body: bytes, *, now: float, ttl: float = 300
) -> str:
    """A token as LiveKit's server signs a webhook (used by tests and local replay tools)."""
    claims: dict[str, Any] = {
        "iss": api_key,
        "nbf": int(now),
        "exp": int(now + ttl),
        "sha256": body_sha256(body),
    }
    return jwt.encode(claims, api_secret, algorithm="HS256")


def verify_livekit(
    api_key: str, api_secret: str, body: bytes, authorization: str | None, *, now: float
) -> None:
    """Raise `SignatureError` unless `authorization` is a valid LiveKit webhook token for
    `body`. The header is the bare JWT (LiveKit's own senders) or `Bearer <JWT>`."""
    if not authorization or not authorization.strip():
        raise SignatureError("missing Authorization header")
    token = authorization.strip()
    scheme, _, rest = token.partition(" ")
    if rest and scheme.lower() == "bearer":
        token = rest.strip()
    try:
        claims = jwt.decode(
            token,
            api_secret,
            algorithms=["HS256"],
            # exp/nbf are checked below against `now` (the service clock), not the OS clock.
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError as exc:
        raise SignatureError(f"invalid token: {exc}") from None
    if claims.get("iss") != api_key:
        raise SignatureError("token issuer is not the configured API key")
    exp = claims.get("exp")
    if isinstance(exp, int | float) and now > exp + LIVEKIT_LEEWAY_S:
        raise SignatureError("token expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and now < nbf - LIVEKIT_LEEWAY_S:
        raise SignatureError("token not yet valid")
    claimed = claims.get("sha256")
    if not isinstance(claimed, str):
        raise SignatureError("token has no sha256 claim")
    if not hmac.compare_digest(claimed.encode(), body_sha256(body).encode()):
        raise SignatureError("sha256 claim does not match the body")


# --- Standard Webhooks ------------------------------------------------------------------------

_SECRET_SPLIT = re.compile(r"[\s,]+")


def standard_secrets(configured: str) -> list[bytes]:
    """The keys of `HADIR_WEBHOOK_SECRET`: one or more `whsec_<base64>` secrets separated by
    spaces or commas (several during a rotation). A secret without the prefix is taken as
    base64 too."""
    keys: list[bytes] = []
    for item in _SECRET_SPLIT.split(configured.strip()):
        if not item:
            continue
        raw = item.removeprefix("whsec_")
        try:
            keys.append(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("HADIR_WEBHOOK_SECRET must be whsec_<base64> secrets") from None
    return keys


def standard_signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """One `v1,<base64>` signature of a Standard Webhooks message."""
    message = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def verify_standard(
    keys: Sequence[bytes],
    body: bytes,
    msg_id: str | None,
    timestamp: str | None,
    signatures: str | None,
    *,
    now: float,
    tolerance: float = TOLERANCE_S,
) -> None:
    """Raise `SignatureError` unless one of the `v1` signatures is valid for one of `keys`."""
    if not msg_id:
        raise SignatureError("missing webhook-id header")
    if not signatures:
        raise SignatureError("missing webhook-signature header")
    _within(timestamp, now, tolerance, "webhook-timestamp")
    assert timestamp is not None
    offered = _v1_signatures(signatures.split())
    if not offered:
        raise SignatureError("webhook-signature has no v1 signature")
    for key in keys:
        expected = standard_signature(key, msg_id, timestamp.strip(), body).encode()
        # Compare with every offered signature (no early exit on a match of a prefix).
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            return
    raise SignatureError("no webhook-signature matches the body")


def _v1_signatures(items: Iterable[str]) -> list[bytes]:
    return [item.encode() for item in items if item.startswith("v1,")]
