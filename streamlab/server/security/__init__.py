"""Authentication (SASL), encryption (TLS) and authorization (ACLs) for ``streamlab serve``.

With no :class:`Security` options the server is what it always was: PLAINTEXT, every
client is ``User:ANONYMOUS`` and every request is allowed. With users configured, clients
must authenticate with SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) before any request but
ApiVersions, SaslHandshake and SaslAuthenticate, and every request is checked against
Kafka ACLs (:mod:`.acls`). TLS (:mod:`.tls`) is independent of both. For example::

    streamlab serve --host 0.0.0.0 --users-file users.txt --super-users User:admin \
        --tls-cert server.pem --tls-key server-key.pem        # a SASL_SSL listener

    kafka-acls.sh --bootstrap-server host:9092 --command-config admin.properties \
        --add --allow-principal User:alice --operation Write --topic events

Listening on a non-loopback address without users is refused unless ``--insecure``.

What each API needs (Kafka's rules): Produce WRITE on the topic; Fetch READ; ListOffsets
and Metadata DESCRIBE (Metadata for all topics lists only those); CreateTopics CREATE on
the cluster or the topic; DeleteTopics DELETE; CreatePartitions ALTER; DescribeConfigs
DESCRIBE_CONFIGS and IncrementalAlterConfigs ALTER_CONFIGS on the topic, group or cluster;
JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and the share-group APIs READ
on the group (OffsetCommit and ShareFetch also READ on the topic); OffsetFetch,
DescribeGroups and FindCoordinator DESCRIBE on the group; ListGroups DESCRIBE on the
cluster or lists the groups one may DESCRIBE; InitProducerId IDEMPOTENT_WRITE on the
cluster or WRITE on some topic; CreateAcls/DeleteAcls ALTER and DescribeAcls DESCRIBE on
the cluster. Refusals carry TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from streamlab.server.security.acls import FILE_NAME as ACL_FILE
from streamlab.server.security.acls import Authorizer, Operation, ResourceType
from streamlab.server.security.sasl import MECHANISMS, Authenticator
from streamlab.server.security.users import Users

__all__ = [
    "ANONYMOUS",
    "MECHANISMS",
    "Operation",
    "ResourceType",
    "Security",
    "Session",
    "is_loopback",
]

ANONYMOUS: Final = "User:ANONYMOUS"
log = logging.getLogger("streamlab.server")


@dataclass(frozen=True, kw_only=True)
class Security:
    """How one server authenticates, encrypts and authorizes.

    ``users`` enables SASL with ``mechanisms``; ``super_users`` are principals
    (``User:alice``) allowed everything; ``allow_everyone_if_no_acl_found`` is Kafka's
    setting of that name; ``ssl_context`` enables TLS.
    """

    users: Users | None = None
    mechanisms: tuple[str, ...] = MECHANISMS
    super_users: frozenset[str] = frozenset()
    allow_everyone_if_no_acl_found: bool = False
    ssl_context: ssl.SSLContext | None = None

    @property
    def sasl_enabled(self) -> bool:
        return self.users is not None

    @property
    def protocol(self) -> str:
        """Kafka's name for the listener's security protocol."""
        return ("SASL_" if self.sasl_enabled else "") + ("SSL" if self.ssl_context else "PLAINTEXT")

    def authorizer(self, data_dir: Path) -> Authorizer | None:
        """The ACL authorizer, or None when authorization is off (no SASL: nobody is known)."""
        if not self.sasl_enabled:
            if (data_dir / ACL_FILE).exists():
                log.warning("%s has ACLs, but without users (SASL) they are not enforced", data_dir / ACL_FILE)
            return None
        return Authorizer(
            data_dir,
            super_users=self.super_users,
            allow_everyone_if_no_acl_found=self.allow_everyone_if_no_acl_found,
        )


@dataclass(eq=False)
class Session:
    """The security state of one connection: who it is and how far SASL got."""

    principal: str = ANONYMOUS
    authenticated: bool = False
    failed: bool = False  # SASL failed: the connection is closed at its next request
    authenticator: Authenticator | None = field(default=None, repr=False)

    def fail(self) -> None:
        """A SASL exchange failed or was out of order: the connection is closed at its next
        request, unless it authenticated before (a failed re-authentication keeps it)."""
        self.failed = not self.authenticated


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
