"""Who a connection is: signed tokens, checked without I/O.

How it works: an operator mints a token (``sleepsync token``) for one person:
a JWT signed with HS256 and a shared secret, or with EdDSA (Ed25519) and a
private key whose public half the servers hold. Its claims:

==========  ==============================================================
``sub``     the name; ``hello.name`` must be exactly this
``room``    a glob of the rooms it may join (``night``, ``night-*``, ``*``)
``role``    ``observer`` (read), ``dreamer`` (read and say) or ``operator``
            (everything, including the operator actions): a ceiling, see
            :data:`~sleepsync.protocol.session.server.SEATS`
``exp``     expiry, Unix seconds; checked at hello and for as long as the
            connection lives (with :data:`LEEWAY` seconds of grace)
``aud``     always :data:`AUDIENCE`, so a token minted for something else
            with the same secret is refused
``pod``     optional: the pod this dreamer sleeps in (carried, not used yet)
==========  ==============================================================

:func:`verify` checks a token against the :class:`Keys` a server accepts and
the time it is given, and returns its :class:`Claims`, or raises
:class:`~sleepsync.protocol.errors.Unauthorized` with a precise ``reason``
(:data:`REFUSALS`). The algorithm is taken from the token's header only to
pick the key configured for it: a token can never choose its own key (no
``none``, no HS256 signed with a public key). :func:`mint` is the other half,
for the CLI and the load tester. Without keys a server runs in *open mode*
(loopback only): :meth:`Claims.open` gives every name the operator role on
every room, which is what SleepSync did before tokens.

Pods are not people: names in :data:`POD_NAMESPACE` are refused to websocket
clients (and never minted), so no one can sit in a pod's place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal, TypeAlias

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import LocalError, Unauthorized
from .wire import NAME_RE

__all__ = [
    "AUDIENCE",
    "LEEWAY",
    "MIN_SECRET_BYTES",
    "POD_NAMESPACE",
    "REFUSALS",
    "ROOM_GLOB_RE",
    "TOKEN_ROLES",
    "Claims",
    "Keys",
    "TokenRole",
    "is_pod_name",
    "mint",
    "unverified_subject",
    "verify",
]

TokenRole: TypeAlias = Literal["observer", "dreamer", "operator"]
TOKEN_ROLES: tuple[TokenRole, ...] = ("observer", "dreamer", "operator")
#: The ``aud`` claim of every SleepSync token.
AUDIENCE = "sleepsync"
#: Seconds a token still counts after its ``exp`` (clocks of two machines differ).
LEEWAY = 5.0
#: Shortest shared secret accepted, in bytes (RFC 7518: at least the hash size).
MIN_SECRET_BYTES = 32
#: Names that are pods' ids (case-insensitive): never a websocket client's name.
POD_NAMESPACE = "pod-*"
#: A room glob: room id characters plus ``* ? [ ] !``.
ROOM_GLOB_RE = re.compile(r"[a-z0-9_*?\[\]!-]{1,64}")
#: Every ``Unauthorized.reason`` :func:`verify` (and the session) can give.
REFUSALS = (
    "missing",
    "malformed",
    "algorithm",
    "signature",
    "claims",
    "expired",
    "not_yet_valid",
    "name",
)


def is_pod_name(name: str) -> bool:
    """True for a name in the pods' namespace (:data:`POD_NAMESPACE`)."""
    return fnmatchcase(name.lower(), POD_NAMESPACE)


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its holder."""

    subject: str
    #: Glob of the rooms the holder may join and name.
    rooms: str
    role: TokenRole
    #: Unix seconds after which (plus :data:`LEEWAY`) the token is void; inf: never.
    expires: float
    pod: str | None = None

    @classmethod
    def open(cls, name: str) -> Claims:
        """Open mode (no keys, loopback only): anyone is an operator everywhere."""
        return cls(subject=name, rooms="*", role="operator", expires=math.inf)

    def covers(self, room: str) -> bool:
        """May the holder join (or act on) ``room``?"""
        return fnmatchcase(room, self.rooms)


@dataclass(frozen=True, slots=True, repr=False)
class Keys:
    """The keys tokens are signed and checked with (a secret, an Ed25519 pair, or both).

    A server needs the secret or the public key; minting needs the secret or
    the private key. ``repr`` never shows them.
    """

    secret: bytes | None = None
    public_key: Ed25519PublicKey | None = None
    private_key: Ed25519PrivateKey | None = None

    def __post_init__(self) -> None:
        if self.secret is not None and len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"the auth secret must be at least {MIN_SECRET_BYTES} bytes; make one with "
                "`openssl rand -base64 48`"
            )

    def __repr__(self) -> str:
        return f"Keys(algorithms={self.algorithms()!r})"

    @classmethod
    def load(cls, *, secret: str | bytes | None = None, pem: str | bytes | None = None) -> Keys:
        """Keys from a secret file's text (one trailing newline dropped) and/or an
        Ed25519 PEM key (private: can mint and verify; public: verify only).

        Raises ValueError, in one sentence, for anything else.
        """
        raw = secret.encode() if isinstance(secret, str) else secret
        if raw is not None:
            raw = raw.removesuffix(b"\n").removesuffix(b"\r")
        public: Ed25519PublicKey | None = None
        private: Ed25519PrivateKey | None = None
        if pem is not None:
            data = pem.encode() if isinstance(pem, str) else pem
            try:
                if b"PRIVATE KEY" in data:
                    key = serialization.load_pem_private_key(data, password=None)
                    if not isinstance(key, Ed25519PrivateKey):
                        raise ValueError("not an Ed25519 key")
                    private, public = key, key.public_key()
                else:
                    loaded = serialization.load_pem_public_key(data)
                    if not isinstance(loaded, Ed25519PublicKey):
                        raise ValueError("not an Ed25519 key")
                    public = loaded
            except (ValueError, TypeError) as exc:
                raise ValueError(f"expected an Ed25519 key in PEM form ({exc})") from None
        return cls(secret=raw, public_key=public, private_key=private)

    def algorithms(self) -> tuple[str, ...]:
        """The ``alg`` values a token may carry to be checked with these keys."""
        found = []
        if self.secret is not None:
            found.append("HS256")
        if self.public_key is not None:
            found.append("EdDSA")
        return tuple(found)

    def _verifying(self, alg: object) -> bytes | Ed25519PublicKey | None:
        if alg == "HS256":
            return self.secret
        if alg == "EdDSA":
            return self.public_key
        return None


def mint(
    keys: Keys,
    *,
    subject: str,
    rooms: str,
    role: TokenRole,
    now: float,
    ttl: float,
    pod: str | None = None,
) -> str:
    """A token for ``subject``, valid ``ttl`` seconds from ``now`` (Unix seconds).

    Signed with the private key when ``keys`` has one (EdDSA), else with the
    secret (HS256). Raises LocalError for claims no server would accept.
    """
    if not NAME_RE.fullmatch(subject):
        raise LocalError(f"a name must match {NAME_RE.pattern}")
    if is_pod_name(subject):
        raise LocalError(f"names matching {POD_NAMESPACE} are pods'; choose another name")
    if not ROOM_GLOB_RE.fullmatch(rooms):
        raise LocalError(f"a room pattern must match {ROOM_GLOB_RE.pattern}")
    if role not in TOKEN_ROLES:
        raise LocalError(f"a role is one of {', '.join(TOKEN_ROLES)}")
    if not (ttl > 0 and math.isfinite(ttl)):
        raise LocalError("a token's time to live must be a positive number of seconds")
    if pod is not None and not NAME_RE.fullmatch(pod):
        raise LocalError(f"a pod id must match {NAME_RE.pattern}")
    claims: dict[str, object] = {
        "sub": subject,
        "room": rooms,
        "role": role,
        "aud": AUDIENCE,
        "iat": int(now),
        "exp": math.ceil(now + ttl),
    }
    if pod is not None:
        claims["pod"] = pod
    if keys.private_key is not None:
        return jwt.encode(claims, keys.private_key, algorithm="EdDSA")
    if keys.secret is not None:
        return jwt.encode(claims, keys.secret, algorithm="HS256")
    raise LocalError("minting a token needs the shared secret or an Ed25519 private key")


def verify(token: str, keys: Keys, now: float, *, leeway: float = LEEWAY) -> Claims:
    """The claims of ``token`` if it is valid at ``now`` (Unix seconds).

    Raises Unauthorized naming the reason: ``malformed``, ``algorithm`` (not
    one these keys check), ``signature``, ``claims`` (missing, mistyped, or
    not for SleepSync), ``expired``, ``not_yet_valid``.
    """
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.InvalidTokenError:
        raise Unauthorized("malformed", "the token is not a readable JWT") from None
    key = keys._verifying(alg)
    if key is None:
        shown = alg if isinstance(alg, str) and alg.isalnum() and len(alg) <= 16 else "it"
        accepted = " or ".join(keys.algorithms()) or "nothing"
        raise Unauthorized(
            "algorithm", f"tokens signed with {shown} are not accepted here ({accepted} is)"
        )
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[str(alg)],
            audience=AUDIENCE,
            # Time is checked below, against the ``now`` given (no clock in here).
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["sub", "room", "role", "exp", "aud"],
            },
        )
    except jwt.InvalidSignatureError:
        raise Unauthorized("signature", "the token's signature does not match") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized("claims", f"the token has no {exc.claim!r} claim") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized("claims", "the token is not for SleepSync") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("malformed", "the token could not be read") from None
    claims = _claims(payload)
    if now >= claims.expires + leeway:
        raise Unauthorized("expired", "the token expired; get a new one")
    nbf = payload.get("nbf")
    if isinstance(nbf, int | float) and now + leeway < nbf:
        raise Unauthorized("not_yet_valid", "the token is not valid yet")
    return claims


def _claims(payload: Mapping[str, object]) -> Claims:
    sub, rooms, role, exp = payload["sub"], payload["room"], payload["role"], payload["exp"]
    pod = payload.get("pod")
    if not isinstance(sub, str) or not NAME_RE.fullmatch(sub):
        raise Unauthorized("claims", f"the token's 'sub' must be a name ({NAME_RE.pattern})")
    if not isinstance(rooms, str) or not ROOM_GLOB_RE.fullmatch(rooms):
        raise Unauthorized("claims", "the token's 'room' must be a room pattern")
    if role == "observer" or role == "dreamer" or role == "operator":
        checked: TokenRole = role
    else:
        raise Unauthorized("claims", f"the token's 'role' must be one of {', '.join(TOKEN_ROLES)}")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise Unauthorized("claims", "the token's 'exp' must be a number")
    if pod is not None and (not isinstance(pod, str) or not NAME_RE.fullmatch(pod)):
        raise Unauthorized("claims", "the token's 'pod' must be a pod id")
    return Claims(subject=sub, rooms=rooms, role=checked, expires=float(exp), pod=pod)


def unverified_subject(token: str) -> str | None:
    """The ``sub`` a token claims, unchecked: what a client says in hello with it."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    sub = payload.get("sub")
    return sub if isinstance(sub, str) else None
