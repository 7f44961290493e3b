"""Local JWTs: HS256 tokens minted for ``make dev`` and checked the way API Gateway's JWT authorizer does.

API Gateway verifies RS256 tokens against an OIDC issuer's keys; locally there is no issuer, so tokens
are HS256 with a shared secret (``SIGNOFF_DEV_JWT_SECRET``, default ``signoff-dev-secret``), issuer
``signoff-dev`` and audience ``signoff``. Everything else follows the authorizer: the token comes from the
``Authorization`` header with or without ``Bearer``; ``exp`` must be in the future, ``nbf`` and ``iat``
not; ``aud`` (or, without ``aud``, ``client_id``) must be an accepted audience; a route with
authorization scopes needs one of them in ``scope``/``scp``. A refusal is API Gateway's: 401
``{"message":"Unauthorized"}`` (403 ``Forbidden`` for a missing scope) with a ``www-authenticate``
header naming the reason. Only the standard library is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SECRET_ENV = "SIGNOFF_DEV_JWT_SECRET"
DEFAULT_SECRET = "signoff-dev-secret"
ISSUER = "signoff-dev"
AUDIENCE = "signoff"
GROUPS_CLAIM_ENV = "SIGNOFF_JWT_GROUPS_CLAIM"
DEFAULT_GROUPS_CLAIM = "cognito:groups"


def dev_secret(environ: Mapping[str, str] | None = None) -> str:
    """The local signing secret: ``SIGNOFF_DEV_JWT_SECRET``, else ``signoff-dev-secret``."""
    env = os.environ if environ is None else environ
    return env.get(SECRET_ENV) or DEFAULT_SECRET


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or any(
        c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text
    ):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: Mapping[str, Any], secret: str, headers: Mapping[str, Any] | None = None) -> str:
    """Sign claims as an HS256 JWT (compact serialization).

    Args:
        claims: the payload.
        secret: the HMAC key.
        headers: extra JOSE header fields (``alg`` and ``typ`` are set).

    Returns:
        ``header.payload.signature``.
    """
    header = {"alg": "HS256", "typ": "JWT", **(headers or {})}
    signing_input = ".".join(
        _b64encode(json.dumps(part, separators=(",", ":")).encode()) for part in (header, dict(claims))
    )
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64encode(signature)}"


def mint(
    subject: str,
    *,
    groups: Sequence[str] = (),
    ttl_s: int = 3600,
    secret: str | None = None,
    now: float | None = None,
    groups_claim: str | None = None,
    scopes: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A local dev token for ``subject``, accepted by ``make dev`` under ``SIGNOFF_AUTH=jwt``.

    Args:
        subject: the ``sub`` claim (the principal's user id).
        groups: the caller's groups, in the groups claim (``SIGNOFF_JWT_GROUPS_CLAIM``, default
            ``cognito:groups``, as the runtime reads it).
        ttl_s: lifetime in seconds.
        secret: the signing secret; ``dev_secret()`` when None.
        now: the issue time (epoch seconds); now when None.
        groups_claim: the claim that lists the groups; from the environment when None.
        scopes: OAuth scopes, in ``scope`` (space-separated).
        extra: more claims (override the ones above).

    Returns:
        The token.
    """
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl_s),
        "username": subject,
        "token_use": "access",
    }
    if groups:
        claims[groups_claim or os.environ.get(GROUPS_CLAIM_ENV) or DEFAULT_GROUPS_CLAIM] = list(groups)
    if scopes:
        claims["scope"] = " ".join(scopes)
    claims.update(extra or {})
    return encode(claims, dev_secret() if secret is None else secret)


@dataclass
class Verdict:
    """What the authorizer decided.

    Attributes:
        status: 200 (accepted), 401 (no or invalid token) or 403 (a scope is missing).
        claims: the verified claims (accepted tokens only).
        scopes: the token's scopes (``scope``/``scp``), or None when it has none.
        challenge: the ``www-authenticate`` value of a refusal.
    """

    status: int
    claims: dict[str, Any] = field(default_factory=dict)
    scopes: list[str] | None = None
    challenge: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    def response(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """API Gateway's answer to a refused request: ``(status, headers, body)``."""
        message = b'{"message":"Forbidden"}' if self.status == 403 else b'{"message":"Unauthorized"}'
        return (
            self.status,
            [("content-type", "application/json"), ("www-authenticate", self.challenge)],
            message,
        )


def _refuse(description: str, status: int = 401, *, error: str = "invalid_token", scope: str = "") -> Verdict:
    return Verdict(
        status, challenge=f'Bearer scope="{scope}" error="{error}" error_description="{description}"'
    )


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(name)
    return float(value)


def token_scopes(claims: Mapping[str, Any]) -> list[str] | None:
    """The scopes a token carries: ``scope`` (space-separated) or ``scp`` (list or string)."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return [item for item in raw.split() if item] or None
    if isinstance(raw, list):
        return [str(item) for item in raw] or None
    return None


def verify(
    authorization: str | None,
    *,
    secret: str,
    issuer: str = ISSUER,
    audiences: Sequence[str] = (AUDIENCE,),
    required_scopes: Sequence[str] = (),
    now: float | None = None,
) -> Verdict:
    """Check an ``Authorization`` header as API Gateway's JWT authorizer does (HS256 locally).

    Args:
        authorization: the header's value (``Bearer <jwt>`` or the bare token), or None.
        secret: the HMAC key.
        issuer: the accepted ``iss``.
        audiences: the accepted ``aud`` (or ``client_id``) values.
        required_scopes: the route's authorization scopes; the token needs one of them.
        now: the current time (epoch seconds); now when None.

    Returns:
        The verdict.
    """
    token = (authorization or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        return Verdict(401, challenge="Bearer")
    parts = token.split(".")
    if len(parts) != 3:
        return _refuse("token contains an invalid number of segments")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2]) if parts[2] else b""
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return _refuse("the token is malformed")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return _refuse("the token is malformed")
    if header.get("alg") != "HS256":
        return _refuse(f"signing method {header.get('alg')} is invalid")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return _refuse("signature is invalid")
    current = time.time() if now is None else now
    try:
        expires, not_before, issued = (_number(claims, name) for name in ("exp", "nbf", "iat"))
    except ValueError as bad:
        return _refuse(f"the {bad} claim is not a number")
    if expires is None or expires <= current:
        return _refuse("the token has expired")
    if not_before is not None and not_before > current:
        return _refuse("the token is not valid yet")
    if issued is not None and issued > current:
        return _refuse("the token was issued in the future")
    if claims.get("iss") != issuer:
        return _refuse("the token does not have a valid issuer")
    audience = claims.get("aud", claims.get("client_id"))
    offered = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(item, str) and item in audiences for item in offered):
        return _refuse("the token does not have a valid audience")
    scopes = token_scopes(claims)
    if required_scopes and not set(required_scopes) & set(scopes or ()):
        return _refuse(
            "the token does not have a required scope",
            403,
            error="insufficient_scope",
            scope=" ".join(required_scopes),
        )
    return Verdict(200, claims=claims, scopes=scopes)
