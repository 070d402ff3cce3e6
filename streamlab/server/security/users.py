"""The users of a secured ``streamlab serve``: names and password-derived credentials.

Users come from ``--user NAME:PASSWORD`` options and from a users file (``--users-file``)
with one ``NAME:PASSWORD`` per line; blank lines and lines starting with ``#`` are
ignored, and a password may itself contain ``:`` (only the first one separates). The file
holds passwords in clear, as Kafka's JAAS files for PLAIN do: keep it readable only by the
server's user.

No password is kept in memory. At load time each one is turned into SCRAM credentials
(RFC 5802: a random salt, 4096 PBKDF2 iterations as Kafka's minimum, then the stored key
and server key) for SCRAM-SHA-256 and SCRAM-SHA-512; PLAIN checks a password by deriving
the SCRAM-SHA-256 stored key again with the same salt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from streamlab.errors import ConfigError

__all__ = ["SCRAM_HASHES", "ScramCredential", "Users", "scram_credential"]

#: SCRAM mechanism name -> hashlib name (KIP-84 defines these two).
SCRAM_HASHES: Final[dict[str, str]] = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
ITERATIONS: Final = 4096
SALT_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What a SCRAM server stores for one user and hash (RFC 5802 section 3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def _keys(hash_name: str, password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", hash_name)
    stored_key = hashlib.new(hash_name, client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", hash_name)
    return stored_key, server_key


def scram_credential(hash_name: str, password: str, *, salt: bytes | None = None,
                     iterations: int = ITERATIONS) -> ScramCredential:  # fmt: skip
    """Derive the SCRAM credential for ``password`` (a random salt unless one is given)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    stored_key, server_key = _keys(hash_name, password, salt, iterations)
    return ScramCredential(salt, iterations, stored_key, server_key)


def _check_name(name: str, where: str) -> str:
    # Kafka's principal names may hold almost anything, but a name that is empty, has
    # surrounding blanks or control characters is a typo in a config file, not a user.
    if not name or name != name.strip() or any(ord(c) < 32 for c in name):
        raise ConfigError(f"{where}: user name {name!r} is empty or has blanks or control characters")
    return name


class Users:
    """User name -> SCRAM credentials per hash. Immutable once built."""

    def __init__(self, passwords: dict[str, str] | None = None) -> None:
        self._credentials: dict[str, dict[str, ScramCredential]] = {}
        for name, password in (passwords or {}).items():
            self.add(name, password)

    def add(self, name: str, password: str, *, where: str = "user", salt: bytes | None = None) -> None:
        """Add (or replace) a user; ``salt`` is random unless given (tests use RFC vectors)."""
        _check_name(name, where)
        if not password:
            raise ConfigError(f"{where}: user {name!r} has an empty password")
        self._credentials[name] = {
            mechanism: scram_credential(hash_name, password, salt=salt) for mechanism, hash_name in SCRAM_HASHES.items()
        }

    @classmethod
    def load(cls, path: str | Path | None = None, entries: list[str] | tuple[str, ...] = ()) -> Users:
        """Users from a ``NAME:PASSWORD`` lines file and/or ``NAME:PASSWORD`` strings."""
        users = cls()
        if path is not None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the users file {path}: {exc}") from None
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                users._add_entry(line, f"{path}:{number}")
        for entry in entries:
            users._add_entry(entry, "--user")
        return users

    def _add_entry(self, entry: str, where: str) -> None:
        name, sep, password = entry.partition(":")
        if not sep:
            raise ConfigError(f"{where}: expected NAME:PASSWORD")
        self.add(name, password, where=where)

    def __len__(self) -> int:
        return len(self._credentials)

    def __contains__(self, name: object) -> bool:
        return name in self._credentials

    def names(self) -> list[str]:
        return sorted(self._credentials)

    def scram(self, name: str, mechanism: str) -> ScramCredential | None:
        """The credential of ``name`` for a SCRAM mechanism, or None for an unknown user."""
        found = self._credentials.get(name)
        return None if found is None else found.get(mechanism)

    def check_password(self, name: str, password: str) -> bool:
        """True if ``password`` is ``name``'s (constant time in the comparison)."""
        mechanism = "SCRAM-SHA-256"
        cred = self.scram(name, mechanism)
        if cred is None:
            # Spend the same work for an unknown user, so timing does not tell names apart.
            _keys(SCRAM_HASHES[mechanism], password, b"\0" * SALT_BYTES, ITERATIONS)
            return False
        stored_key, _ = _keys(SCRAM_HASHES[mechanism], password, cred.salt, cred.iterations)
        return hmac.compare_digest(stored_key, cred.stored_key)
