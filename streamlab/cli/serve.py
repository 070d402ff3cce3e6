"""``streamlab serve``: serve a data directory over the Kafka protocol until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from streamlab import DEFAULT_DIRECTORY

if TYPE_CHECKING:
    from streamlab.server.security import Security


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092; 0 picks one)")
    parser.add_argument(
        "--advertised-host",
        metavar="H",
        help="host name clients must use to reach this broker (default: --host, or this machine's name for 0.0.0.0)",
    )
    parser.add_argument("--schema-registry-port", type=int, metavar="N",
                        help="also serve Confluent's Schema Registry REST API on --host at port N (0 picks one; "
                        "schemas are kept in the _schemas topic; needs pip install 'streamlab[registry]')")  # fmt: skip
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    _add_limit_arguments(parser)
    _add_topic_arguments(parser)
    _add_security_arguments(parser)


def _add_topic_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("topics", "topic auto-creation, as Kafka's broker settings")
    group.add_argument("--no-auto-create-topics", dest="auto_create_topics", action="store_false",
                       help="an unknown topic is an error instead of being created on first use "
                       "(auto.create.topics.enable=false; default: created, as Kafka)")  # fmt: skip
    group.add_argument("--num-partitions", type=int, default=1, metavar="N",
                       help="partitions of an auto-created topic (num.partitions; default 1)")  # fmt: skip
    group.add_argument("--group-consumer-session-timeout-ms", type=int, default=45_000, metavar="MS",
                       help="a consumer-protocol (KIP-848) member silent this long is removed "
                       "(group.consumer.session.timeout.ms; default 45000)")  # fmt: skip
    group.add_argument("--group-consumer-heartbeat-interval-ms", type=int, default=5_000, metavar="MS",
                       help="how often consumer-protocol members heartbeat (group.consumer.heartbeat.interval.ms; "
                       "default 5000)")  # fmt: skip


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from streamlab.config import BrokerSettings
    from streamlab.groups.consumer_member import ConsumerGroupConfig

    groups = ConsumerGroupConfig(session_timeout_ms=args.group_consumer_session_timeout_ms,
                                 heartbeat_interval_ms=args.group_consumer_heartbeat_interval_ms)  # fmt: skip
    settings = BrokerSettings(auto_create_topics_enable=args.auto_create_topics, num_partitions=args.num_partitions,
                              group_consumer_session_timeout_ms=groups.session_timeout_ms,
                              group_consumer_heartbeat_interval_ms=groups.heartbeat_interval_ms)  # fmt: skip
    return {"settings": settings}


def _add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults live in ServerLimits and retention_schedule (imported only when serving).
    group = parser.add_argument_group("limits", "Kafka's broker settings, by Kafka's names (see README)")
    options = {
        "--fetch-max-bytes": "most bytes in one Fetch response (fetch.max.bytes; default 57671680, Kafka's 55 MB)",
        "--socket-request-max-bytes": "largest request frame (socket.request.max.bytes; default 104857600)",
        "--queued-max-request-bytes": "memory for requests in flight and responses not yet written; past it no "
        "request is read (queued.max.request.bytes; default 104857600)",
        "--max-connections-per-ip": "more connections from one address are closed (max.connections.per.ip; "
        "default 1000)",
        "--log-retention-check-interval-ms": "how often retention and compaction run "
        "(log.retention.check.interval.ms; default 300000, 5 minutes)",
    }
    for flag, help_text in options.items():
        group.add_argument(flag, type=int, metavar="N", help=help_text)


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword options of serve() that were given on the command line."""
    from streamlab.server.limits import ServerLimits

    given = {name: getattr(args, name) for name in ("fetch_max_bytes", "socket_request_max_bytes",
             "queued_max_request_bytes", "max_connections_per_ip") if getattr(args, name) is not None}  # fmt: skip
    options: dict[str, Any] = {"limits": ServerLimits(**given)}
    if args.log_retention_check_interval_ms is not None:
        options["log_retention_check_interval_ms"] = args.log_retention_check_interval_ms
    return options


def _add_security_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "security",
        "With users, clients must authenticate with SASL and requests are checked against Kafka ACLs "
        "(managed with Kafka's admin tools by super users). Without, everyone may do everything.",
    )
    group.add_argument("--users-file", metavar="FILE",
                       help="users, one NAME:PASSWORD per line (# starts a comment); keep it private")  # fmt: skip
    group.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                       help="a user (repeatable); visible to other local users in the process list")  # fmt: skip
    group.add_argument("--sasl-mechanisms", default="PLAIN,SCRAM-SHA-256,SCRAM-SHA-512", metavar="M,M",
                       help="enabled SASL mechanisms (sasl.enabled.mechanisms; default: all three)")  # fmt: skip
    group.add_argument("--super-users", default="", metavar="User:A;User:B",
                       help="principals allowed everything, ACLs or not (super.users)")  # fmt: skip
    group.add_argument("--allow-everyone-if-no-acl-found", action="store_true",
                       help="allow a request on a resource no ACL matches (default: deny, as Kafka)")  # fmt: skip
    group.add_argument("--tls-cert", metavar="PEM", help="serve TLS with this certificate chain")
    group.add_argument("--tls-key", metavar="PEM", help="the certificate's private key (default: in --tls-cert)")
    group.add_argument("--tls-ca", metavar="PEM", help="require client certificates signed by this CA")
    group.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback --host without authentication")  # fmt: skip


def _security(args: argparse.Namespace) -> Security:
    from streamlab.errors import ConfigError
    from streamlab.server.security import MECHANISMS, Security, is_loopback
    from streamlab.server.security.tls import server_context
    from streamlab.server.security.users import Users

    mechanisms = tuple(m.strip().upper() for m in args.sasl_mechanisms.split(",") if m.strip())
    unknown = [m for m in mechanisms if m not in MECHANISMS]
    if unknown or not mechanisms:
        raise ConfigError(f"--sasl-mechanisms: {', '.join(unknown) or 'none'} (choose from {', '.join(MECHANISMS)})")
    users = Users.load(args.users_file, args.user) if args.users_file or args.user else None
    if users is not None and not len(users):
        raise ConfigError(f"the users file {args.users_file} defines no user")
    super_users = frozenset(p.strip() for p in args.super_users.replace(",", ";").split(";") if p.strip())
    if (super_users or args.allow_everyone_if_no_acl_found) and users is None:
        raise ConfigError("--super-users and --allow-everyone-if-no-acl-found need users (--users-file or --user)")
    if args.tls_key and not args.tls_cert:
        raise ConfigError("--tls-key needs --tls-cert")
    if users is None and not is_loopback(args.host) and not args.insecure:
        raise ConfigError(
            f"refusing to serve on {args.host} without authentication: anyone who reaches the port could "
            "read, write and delete every topic. Configure users (--users-file or --user), "
            "or pass --insecure to serve without them."
        )
    if users is not None and not super_users and not args.allow_everyone_if_no_acl_found:
        logging.getLogger("streamlab.server").warning(
            "users but no --super-users: every request is denied until ACLs allow it, and only a super user "
            "can create ACLs"
        )
    return Security(
        users=users,
        mechanisms=mechanisms,
        super_users=super_users,
        allow_everyone_if_no_acl_found=args.allow_everyone_if_no_acl_found,
        ssl_context=server_context(args.tls_cert, args.tls_key, cafile=args.tls_ca) if args.tls_cert else None,
    )


def _check_registry(args: argparse.Namespace) -> None:
    from streamlab.errors import ConfigError
    from streamlab.server.security import is_loopback

    # The registry's HTTP endpoint has no authentication (nor TLS): SASL users protect only
    # the Kafka listener, so off loopback anyone could register and delete schemas.
    if not is_loopback(args.host) and not args.insecure:
        raise ConfigError(
            f"refusing to serve the Schema Registry on {args.host}: its HTTP endpoint has no authentication. "
            "Serve on a loopback --host, or pass --insecure to serve it without."
        )
    try:
        import streamlab.server.registry_http  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--schema-registry-port needs {exc.name}: pip install 'streamlab[registry]'") from exc


def run(args: argparse.Namespace) -> int:
    data = args.data or os.environ.get("STREAMLAB_DATA") or DEFAULT_DIRECTORY
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)  # recovery reports (RecoveryWarning) belong in the server log
    from streamlab.server import serve  # the protocol stack loads only for this command

    security = _security(args)
    if args.schema_registry_port is not None:
        _check_registry(args)
    serve(data, host=args.host, port=args.port, advertised_host=args.advertised_host, security=security,
          schema_registry_port=args.schema_registry_port, **_limits(args), **_settings(args))  # fmt: skip
    return 0
