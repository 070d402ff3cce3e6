"""Kafka's ACLs: the model, the authorizer's decision, and their file in the data directory.

The semantics are Kafka's ``StandardAuthorizer``'s:

* a binding is a resource pattern (type TOPIC, GROUP, CLUSTER or TRANSACTIONAL_ID; a
  LITERAL name, where ``*`` means every resource of the type, or a PREFIXED name) plus an
  entry (principal ``User:name`` or ``User:*``, host or ``*``, operation, ALLOW or DENY);
* super users are allowed everything;
* otherwise a matching DENY wins over any ALLOW; an ALLOW of READ, WRITE, DELETE or ALTER
  also allows DESCRIBE, and ALTER_CONFIGS allows DESCRIBE_CONFIGS; ALL matches every
  operation;
* a resource that no binding matches at all is denied, unless
  ``allow.everyone.if.no.acl.found`` is set.

The numeric values of the enums are Kafka's wire values. Bindings are kept in
``acls.json`` in the data directory, rewritten atomically (temporary file, fsync, rename)
on every change, so they survive restarts and a crash leaves the old or the new set.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Final

from streamlab.errors import ConfigError, InvalidAclError

__all__ = [
    "CLUSTER_NAME",
    "AclBinding",
    "AclFilter",
    "Authorizer",
    "Operation",
    "PatternType",
    "Permission",
    "ResourceType",
]

log = logging.getLogger(__name__)

CLUSTER_NAME: Final = "kafka-cluster"  # the only name a CLUSTER resource has in Kafka
WILDCARD: Final = "*"
WILDCARD_PRINCIPAL: Final = "User:*"
FILE_NAME: Final = "acls.json"


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


_RESOURCES: Final = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER, ResourceType.TRANSACTIONAL_ID)
# An ALLOW of any of these also allows the key (Kafka's implied operations).
_IMPLIED_BY: Final[dict[Operation, frozenset[Operation]]] = {
    Operation.DESCRIBE: frozenset(
        {Operation.DESCRIBE, Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}
    ),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS}),
}


def _enum(cls: type[IntEnum], value: int, what: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise InvalidAclError(f"unknown {what} {value}") from None


def _wire_enums(
    resource_type: int, pattern_type: int, operation: int, permission: int
) -> tuple[ResourceType, PatternType, Operation, Permission]:
    """The enum fields of an ACL binding or filter from their wire codes (InvalidAclError
    naming the first unknown one)."""
    return (
        _enum(ResourceType, resource_type, "resource type"),
        _enum(PatternType, pattern_type, "pattern type"),
        _enum(Operation, operation, "operation"),
        _enum(Permission, permission, "permission type"),
    )


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL: who may (or may not) do what to which resources."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    @classmethod
    def of(cls, resource_type: int, resource_name: str, pattern_type: int, principal: str, host: str,
           operation: int, permission: int) -> AclBinding:  # fmt: skip
        """A binding from wire values, validated as Kafka's CreateAcls validates it."""
        resource, pattern, op, allowed = _wire_enums(resource_type, pattern_type, operation, permission)
        binding = cls(resource, resource_name, pattern, principal, host, op, allowed)
        binding.validate()
        return binding

    def validate(self) -> None:
        if self.resource_type not in _RESOURCES:
            raise InvalidAclError(f"ACLs cannot be created for resource type {self.resource_type.name}")
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise InvalidAclError(f"ACLs must use pattern type LITERAL or PREFIXED, not {self.pattern_type.name}")
        if not self.resource_name:
            raise InvalidAclError("the resource name of an ACL must not be empty")
        if self.resource_type == ResourceType.CLUSTER and self.resource_name != CLUSTER_NAME:
            raise InvalidAclError(f"the CLUSTER resource is named {CLUSTER_NAME!r}, not {self.resource_name!r}")
        kind, sep, name = self.principal.partition(":")
        if not (kind and sep and name):
            raise InvalidAclError(f"principal {self.principal!r} is not of the form Type:name (e.g. User:alice)")
        if not self.host:
            raise InvalidAclError("the host of an ACL must not be empty (use * for any host)")
        if self.operation in (Operation.UNKNOWN, Operation.ANY):
            raise InvalidAclError(f"ACLs cannot be created for operation {self.operation.name}")
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            raise InvalidAclError(f"ACLs must ALLOW or DENY, not {self.permission.name}")

    def resource_matches(self, resource_type: ResourceType, name: str) -> bool:
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == PatternType.PREFIXED:
            return name.startswith(self.resource_name)
        return self.resource_name in (name, WILDCARD)

    def to_json(self) -> dict[str, str]:
        return {
            "resource_type": self.resource_type.name,
            "resource_name": self.resource_name,
            "pattern_type": self.pattern_type.name,
            "principal": self.principal,
            "host": self.host,
            "operation": self.operation.name,
            "permission": self.permission.name,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> AclBinding:
        binding = cls(
            ResourceType[data["resource_type"]],
            data["resource_name"],
            PatternType[data["pattern_type"]],
            data["principal"],
            data["host"],
            Operation[data["operation"]],
            Permission[data["permission"]],
        )
        binding.validate()
        return binding


@dataclass(frozen=True, slots=True)
class AclFilter:
    """What DescribeAcls and DeleteAcls select: None and ANY match everything."""

    resource_type: ResourceType
    resource_name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: Operation
    permission: Permission

    @classmethod
    def of(cls, resource_type: int, resource_name: str | None, pattern_type: int, principal: str | None,
           host: str | None, operation: int, permission: int) -> AclFilter:  # fmt: skip
        resource, pattern, op, allowed = _wire_enums(resource_type, pattern_type, operation, permission)
        found = cls(resource, resource_name, pattern, principal, host, op, allowed)
        if found.pattern_type == PatternType.UNKNOWN or found.resource_type == ResourceType.UNKNOWN:
            raise InvalidAclError("an ACL filter cannot select UNKNOWN resource or pattern types")
        if found.operation == Operation.UNKNOWN or found.permission == Permission.UNKNOWN:
            raise InvalidAclError("an ACL filter cannot select UNKNOWN operations or permissions")
        return found

    def matches(self, acl: AclBinding) -> bool:
        # Kafka's ResourcePatternFilter.matches and AccessControlEntryFilter.matches.
        if self.resource_type not in (ResourceType.ANY, acl.resource_type):
            return False
        if self.pattern_type not in (PatternType.ANY, PatternType.MATCH, acl.pattern_type):
            return False
        if self.resource_name is not None:
            if self.pattern_type == PatternType.MATCH:
                if acl.pattern_type == PatternType.PREFIXED:
                    if not self.resource_name.startswith(acl.resource_name):
                        return False
                elif acl.resource_name not in (self.resource_name, WILDCARD):
                    return False
            elif acl.resource_name != self.resource_name:
                return False
        return (
            self.principal in (None, acl.principal)
            and self.host in (None, acl.host)
            and self.operation in (Operation.ANY, acl.operation)
            and self.permission in (Permission.ANY, acl.permission)
        )


def _entry_matches(acl: AclBinding, principal: str, host: str) -> bool:
    return acl.principal in (principal, WILDCARD_PRINCIPAL) and acl.host in (host, WILDCARD)


class Authorizer:
    """Decides requests against the ACLs, and keeps them in ``<data_dir>/acls.json``."""

    def __init__(
        self,
        data_dir: Path | None,
        *,
        super_users: Iterable[str] = (),
        allow_everyone_if_no_acl_found: bool = False,
    ) -> None:
        self.path = None if data_dir is None else Path(data_dir) / FILE_NAME
        self.super_users = frozenset(super_users)
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        self._lock = threading.Lock()
        self._acls: list[AclBinding] = self._load()

    # decisions -----------------------------------------------------------------------
    def authorize(self, principal: str, host: str, operation: Operation, resource_type: ResourceType,
                  name: str) -> bool:  # fmt: skip
        if principal in self.super_users:
            return True
        with self._lock:
            acls = [acl for acl in self._acls if acl.resource_matches(resource_type, name)]
        if not acls:
            return self.allow_everyone_if_no_acl_found
        entries = [acl for acl in acls if _entry_matches(acl, principal, host)]
        if any(acl.permission == Permission.DENY and acl.operation in (operation, Operation.ALL) for acl in entries):
            return False
        allowing = _IMPLIED_BY.get(operation, frozenset({operation})) | {Operation.ALL}
        return any(acl.permission == Permission.ALLOW and acl.operation in allowing for acl in entries)

    def authorize_any(self, principal: str, host: str, operation: Operation, resource_type: ResourceType) -> bool:
        """Whether ``principal`` may do ``operation`` on some resource of the type.

        Kafka's ``authorizeByResourceType``, used by InitProducerId (KIP-679: WRITE on any
        topic allows an idempotent producer). Simplified: an ALLOW anywhere counts unless
        a DENY covers every resource of the type (a LITERAL ``*``).
        """
        if principal in self.super_users:
            return True
        with self._lock:
            entries = [a for a in self._acls if a.resource_type == resource_type and _entry_matches(a, principal, host)]
            if not [a for a in self._acls if a.resource_type == resource_type]:
                return self.allow_everyone_if_no_acl_found
        ops = (operation, Operation.ALL)
        if any(a.permission == Permission.DENY and a.operation in ops and a.pattern_type == PatternType.LITERAL
               and a.resource_name == WILDCARD for a in entries):  # fmt: skip
            return False
        return any(a.permission == Permission.ALLOW and a.operation in ops for a in entries)

    # the ACL APIs --------------------------------------------------------------------
    def create(self, bindings: Iterable[AclBinding]) -> None:
        """Add validated bindings (an existing one is not added twice) and persist them."""
        with self._lock:
            acls = list(self._acls)
            for binding in bindings:
                if binding not in acls:
                    acls.append(binding)
            self._save(acls)
            self._acls = acls

    def describe(self, acl_filter: AclFilter) -> list[AclBinding]:
        with self._lock:
            return [acl for acl in self._acls if acl_filter.matches(acl)]

    def delete(self, filters: Iterable[AclFilter]) -> list[list[AclBinding]]:
        """Remove what each filter matches; returns the removed bindings per filter."""
        with self._lock:
            removed = [[acl for acl in self._acls if f.matches(acl)] for f in filters]
            gone = {acl for found in removed for acl in found}
            if gone:
                acls = [acl for acl in self._acls if acl not in gone]
                self._save(acls)
                self._acls = acls
            return removed

    # the file --------------------------------------------------------------------------
    def _load(self) -> list[AclBinding]:
        if self.path is None or not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [AclBinding.from_json(item) for item in data["acls"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Starting with no ACLs would open (or close) everything: refuse instead.
            raise ConfigError(f"cannot read the ACLs in {self.path}: {exc}; fix or remove the file") from None

    def _save(self, acls: list[AclBinding]) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = json.dumps({"version": 1, "acls": [acl.to_json() for acl in acls]}, indent=1)
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(payload + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        # The rename itself must reach the disk, or a crash could bring back the old file.
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
