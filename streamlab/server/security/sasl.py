"""Server side of the SASL mechanisms Kafka clients speak: PLAIN and SCRAM-SHA-256/512.

Each mechanism is a small state machine fed the client's tokens (the ``auth_bytes`` of
SaslAuthenticate requests) and answering the server's tokens. A successful exchange sets
:attr:`Authenticator.principal` (``User:<name>``); any failure raises
:class:`~streamlab.errors.AuthenticationError` with a message safe to send to the client
(it never says whether the user or the password was wrong).

* PLAIN (RFC 4616): one token ``authzid NUL authcid NUL passwd``; an authzid other than
  the user's own name is refused, as Kafka refuses it.
* SCRAM (RFC 5802, RFC 7677, KIP-84): client-first ``n,,n=user,r=nonce`` -> server-first
  ``r=nonce+snonce,s=salt,i=iterations``; client-final ``c=biws,r=...,p=proof`` ->
  server-final ``v=signature``. No channel binding (``p=`` is refused, ``y`` and ``n``
  accepted), and no delegation tokens (the ``tokenauth`` extension is refused). The
  client-final nonce of librdkafka before 2.6.1 (client nonce + combined nonce) is accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Final

from streamlab.errors import AuthenticationError, UnsupportedSaslMechanismError
from streamlab.server.security.users import SCRAM_HASHES, Users

__all__ = ["MECHANISMS", "Authenticator", "PlainAuthenticator", "ScramAuthenticator", "authenticator_for"]

MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_INVALID: Final = "Authentication failed: invalid credentials with SASL mechanism {}"


class Authenticator:
    """One SASL exchange on one connection."""

    mechanism: str = ""

    def __init__(self, users: Users) -> None:
        self.users = users
        self.principal: str | None = None  # set when the exchange succeeded
        self.user = ""  # the name the client claimed, for logs

    @property
    def done(self) -> bool:
        return self.principal is not None

    def step(self, token: bytes) -> bytes:
        """Consume one client token; return the server's answer."""
        raise NotImplementedError

    def _fail(self, why: str | None = None) -> AuthenticationError:
        return AuthenticationError(why or _INVALID.format(self.mechanism))


class PlainAuthenticator(Authenticator):
    mechanism = "PLAIN"

    def step(self, token: bytes) -> bytes:
        if self.done:
            raise self._fail("PLAIN takes a single token")
        try:
            authzid, user, password = token.decode("utf-8").split("\0")
        except (UnicodeDecodeError, ValueError):
            raise self._fail("malformed PLAIN token: expected authzid NUL user NUL password") from None
        self.user = user
        if not user or not password:
            raise self._fail("PLAIN token without a user name or password")
        if authzid and authzid != user:
            raise self._fail("PLAIN authorization id must be empty or the user's own name")
        if not self.users.check_password(user, password):
            raise self._fail()
        self.principal = f"User:{user}"
        return b""


def _attributes(message: str) -> list[tuple[str, str]]:
    out = []
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise AuthenticationError(f"malformed SCRAM message: attribute {part!r}")
        out.append((key, value))
    return out


def _sasl_name(encoded: str) -> str:
    # RFC 5802 5.1: "," and "=" in a name are sent as "=2C" and "=3D"; a lone "=" is invalid.
    if encoded.replace("=2C", "").replace("=3D", "").count("="):
        raise AuthenticationError("malformed SCRAM user name")
    return encoded.replace("=2C", ",").replace("=3D", "=")


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationError("malformed SCRAM message: bad base64") from None


class ScramAuthenticator(Authenticator):
    def __init__(self, users: Users, mechanism: str) -> None:
        super().__init__(users)
        self.mechanism = mechanism
        self._hash = SCRAM_HASHES[mechanism]
        self._state = "first"
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._client_nonce = ""

    def step(self, token: bytes) -> bytes:
        try:
            message = token.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("malformed SCRAM message: not UTF-8") from None
        if self._state == "first":
            return self._first(message).encode()
        if self._state == "final":
            return self._final(message).encode()
        raise self._fail(f"{self.mechanism} exchange already finished")

    def _first(self, message: str) -> str:
        self._state = "failed"
        cbind, sep1, rest = message.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not (sep1 and sep2):
            raise self._fail("malformed SCRAM client-first message")
        if cbind.startswith("p="):
            raise self._fail("SCRAM channel binding is not supported")
        if cbind not in ("n", "y") or (authzid and not authzid.startswith("a=")):
            raise self._fail("malformed SCRAM gs2 header")
        attrs = _attributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            raise self._fail("malformed SCRAM client-first message: expected n=user,r=nonce")
        user = self.user = _sasl_name(attrs[0][1])
        if authzid and _sasl_name(authzid[2:]) != user:
            raise self._fail("SCRAM authorization id must be the user's own name")
        if any(key == "t" or value.startswith("tokenauth") for key, value in attrs[2:]):
            raise self._fail("delegation tokens are not supported")
        credential = self.users.scram(user, self.mechanism)
        if credential is None:
            raise self._fail()
        self._gs2_header = f"{cbind},{authzid},"
        self._client_first_bare = bare
        self._client_nonce = attrs[1][1]
        self._nonce = self._client_nonce + secrets.token_urlsafe(24)
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        self._state = "final"
        return self._server_first

    def _final(self, message: str) -> str:
        self._state = "failed"
        without_proof, sep, proof_part = message.rpartition(",p=")
        if not sep:
            raise self._fail("malformed SCRAM client-final message: no proof")
        attrs = dict(_attributes(without_proof))
        if _b64(attrs.get("c", "")).decode("utf-8", "replace") != self._gs2_header:
            raise self._fail("SCRAM channel binding does not match the client-first message")
        # librdkafka before 2.6.1 sends the client nonce once more in front of the combined
        # one (confluentinc/librdkafka#4895); Kafka 3.8.1+ accepts that too. The server's
        # fresh nonce is in it either way, and the proof covers the message as sent.
        if attrs.get("r") not in (self._nonce, self._client_nonce + self._nonce):
            raise self._fail("SCRAM nonce does not match")
        credential = self.users.scram(self.user, self.mechanism)
        if credential is None:  # cannot happen: checked in _first, users are immutable
            raise self._fail()
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        client_signature = hmac.digest(credential.stored_key, auth_message, self._hash)
        proof = _b64(proof_part)
        if len(proof) != len(client_signature):
            raise self._fail()
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self._hash, client_key).digest(), credential.stored_key):
            raise self._fail()
        server_signature = hmac.digest(credential.server_key, auth_message, self._hash)
        self._state = "done"
        self.principal = f"User:{self.user}"
        return "v=" + base64.b64encode(server_signature).decode()


def authenticator_for(mechanism: str, users: Users, enabled: tuple[str, ...]) -> Authenticator:
    """A fresh authenticator; raises UnsupportedSaslMechanismError for one not enabled."""
    if mechanism not in enabled:
        raise UnsupportedSaslMechanismError(
            f"SASL mechanism {mechanism!r} is not enabled (enabled: {', '.join(enabled)})"
        )
    if mechanism == "PLAIN":
        return PlainAuthenticator(users)
    return ScramAuthenticator(users, mechanism)
