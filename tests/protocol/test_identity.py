"""Tokens: minted and verified without a clock or a socket."""

from __future__ import annotations

import base64
import json
import math

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from sleepsync.protocol.errors import LocalError, Unauthorized
from sleepsync.protocol.identity import (
    AUDIENCE,
    LEEWAY,
    REFUSALS,
    Claims,
    Keys,
    is_pod_name,
    mint,
    unverified_subject,
    verify,
)
from sleepsync.protocol.messages import MAX_TOKEN

SECRET = b"s" * 40
KEYS = Keys.load(secret=SECRET)
NOW = 1_800_000_000.0


def ed25519() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a fresh key pair."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def token(keys: Keys = KEYS, **overrides: object) -> str:
    claims: dict[str, object] = {
        "subject": "lila",
        "rooms": "night-*",
        "role": "dreamer",
        "now": NOW,
        "ttl": 3600.0,
    }
    claims.update(overrides)
    return mint(keys, **claims)  # type: ignore[arg-type]


def refused(tok: str, keys: Keys = KEYS, now: float = NOW) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        verify(tok, keys, now)
    assert info.value.reason in REFUSALS
    assert info.value.close_code == 1008
    assert tok not in info.value.message
    return info.value


def forge(payload: dict[str, object], key: bytes = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


class TestMintAndVerify:
    def test_a_minted_token_gives_back_its_claims(self) -> None:
        tok = token(pod="pod-007")
        claims = verify(tok, KEYS, NOW)
        assert claims == Claims("lila", "night-*", "dreamer", NOW + 3600, pod="pod-007")
        assert claims.covers("night-1") and not claims.covers("day")

    def test_tokens_fit_hello(self) -> None:
        private, _ = ed25519()
        longest = dict(subject="x" * 32, rooms="r" * 64, role="operator", pod="p" * 32)
        for keys in (KEYS, Keys.load(pem=private)):
            assert len(token(keys, **longest)) <= MAX_TOKEN

    def test_eddsa_with_the_public_key_only(self) -> None:
        private, public = ed25519()
        tok = token(Keys.load(pem=private))
        assert jwt.get_unverified_header(tok)["alg"] == "EdDSA"
        assert verify(tok, Keys.load(pem=public), NOW).subject == "lila"
        assert verify(tok, Keys.load(secret=SECRET, pem=public), NOW).role == "dreamer"
        other = Keys.load(pem=ed25519()[1])
        assert refused(tok, other).reason == "signature"

    def test_a_server_checks_each_algorithm_with_its_own_key_only(self) -> None:
        private, public = ed25519()
        eddsa_only = Keys.load(pem=public)
        assert refused(token(), eddsa_only).reason == "algorithm"
        assert refused(token(Keys.load(pem=private)), KEYS).reason == "algorithm"
        # A token that names "none" or signs HS256 with the public key gets nowhere.
        unsigned = jwt.encode({"sub": "lila"}, None, algorithm="none")
        assert refused(unsigned, eddsa_only).reason == "algorithm"
        header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256"}).encode()).decode()
        assert refused(header.rstrip("=") + ".e30.sig").reason == "algorithm"

    def test_expiry_with_leeway_and_not_before(self) -> None:
        tok = token(ttl=60.0)
        assert verify(tok, KEYS, NOW + 60 + LEEWAY - 0.1).subject == "lila"
        assert refused(tok, now=NOW + 60 + LEEWAY).reason == "expired"
        early = forge(
            {
                "sub": "lila",
                "room": "*",
                "role": "observer",
                "aud": AUDIENCE,
                "exp": NOW + 99,
                "nbf": NOW + 30,
            }
        )
        assert refused(early).reason == "not_yet_valid"
        assert verify(early, KEYS, NOW + 30).role == "observer"

    @pytest.mark.parametrize(
        "change",
        [
            {"sub": None},
            {"aud": None},
            {"aud": "another-service"},
            {"sub": "li la"},
            {"room": "A/B"},
            {"role": "king"},
            {"exp": True},
            {"exp": "soon"},
            {"pod": "a/b"},
        ],
    )
    def test_claims_must_be_there_and_well_formed(self, change: dict[str, object]) -> None:
        payload: dict[str, object] = {
            "sub": "lila",
            "room": "*",
            "role": "dreamer",
            "aud": AUDIENCE,
            "exp": NOW + 9,
        }
        payload.update(change)
        present = {key: value for key, value in payload.items() if value is not None}
        assert refused(forge(present)).reason == "claims"

    def test_tampering_and_garbage(self) -> None:
        tok = token()
        head, body, sig = tok.split(".")
        operator = (
            base64.urlsafe_b64encode(
                json.dumps(
                    {
                        "sub": "lila",
                        "room": "*",
                        "role": "operator",
                        "aud": AUDIENCE,
                        "exp": NOW + 9,
                    }
                ).encode()
            )
            .decode()
            .rstrip("=")
        )
        assert refused(f"{head}.{operator}.{sig}").reason == "signature"
        assert refused(f"{head}.{body}.{sig[:-4]}AAAA").reason == "signature"
        assert refused("not a token").reason == "malformed"
        assert refused(f"{head}.!!.{sig}").reason == "malformed"
        assert refused(token(Keys.load(secret=b"t" * 40))).reason == "signature"

    @given(st.text(max_size=300))
    def test_any_string_is_refused_with_a_reason_never_anything_else(self, junk: str) -> None:
        with pytest.raises(Unauthorized) as info:
            verify(junk, KEYS, NOW)
        assert info.value.reason in REFUSALS


class TestMintRefuses:
    @pytest.mark.parametrize(
        "overrides",
        [
            {"subject": "li la"},
            {"subject": "pod-001"},
            {"subject": "POD-7"},
            {"rooms": "Night"},
            {"rooms": ""},
            {"role": "king"},
            {"ttl": 0.0},
            {"ttl": math.inf},
            {"pod": "a/b"},
        ],
    )
    def test_claims_no_server_would_accept(self, overrides: dict[str, object]) -> None:
        with pytest.raises(LocalError):
            token(**overrides)

    def test_minting_needs_a_signing_key(self) -> None:
        with pytest.raises(LocalError, match="private key"):
            token(Keys.load(pem=ed25519()[1]))


class TestKeys:
    def test_a_short_secret_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least 32 bytes"):
            Keys.load(secret="short")

    def test_one_trailing_newline_is_not_part_of_the_secret(self) -> None:
        tok = token(Keys.load(secret=SECRET.decode() + "\r\n"))
        assert verify(tok, KEYS, NOW).subject == "lila"

    def test_keys_that_are_not_ed25519_pem(self) -> None:
        for pem in (b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", b"junk"):
            with pytest.raises(ValueError, match="Ed25519"):
                Keys.load(pem=pem)

    def test_repr_shows_no_secret(self) -> None:
        assert repr(KEYS) == "Keys(algorithms=('HS256',))"
        assert Keys().algorithms() == ()


class TestNames:
    @pytest.mark.parametrize(
        ("name", "pod"), [("pod-001", True), ("Pod-x", True), ("pod", False), ("lila", False)]
    )
    def test_the_pod_namespace(self, name: str, pod: bool) -> None:
        assert is_pod_name(name) == pod

    def test_the_subject_a_client_says_in_hello(self) -> None:
        assert unverified_subject(token()) == "lila"
        assert unverified_subject("junk") is None
        assert unverified_subject(forge({"sub": 5})) is None

    def test_open_mode_claims(self) -> None:
        claims = Claims.open("lila")
        assert (claims.role, claims.expires, claims.covers("any")) == ("operator", math.inf, True)
