"""SASL (PLAIN, SCRAM-SHA-256/512) and TLS for `streamlab serve`, with real clients.

Two servers per module, both with users: one SASL_PLAINTEXT, one SASL_SSL with a
certificate from a throwaway CA. ``--allow-everyone-if-no-acl-found`` keeps ACLs out of
the way here (they have their own tests); authentication is what is checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from harness import free_port
from secure_harness import USERS, SecureServer, confluent_config, make_certificates, tls_args, users_file

from streamlab.cli import main as cli_main
from streamlab.errors import AuthenticationError, ConfigError, UnsupportedSaslMechanismError
from streamlab.server.security.sasl import PlainAuthenticator, ScramAuthenticator, authenticator_for
from streamlab.server.security.users import Users

with warnings.catch_warnings():  # kafka-python loads schemas with deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KpTopicPartition

MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_names = itertools.count()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _start(tmp: Path, extra: list[str]) -> SecureServer:
    proc = SecureServer(tmp / "data", tmp / "server.log",
                        ["--users-file", str(users_file(tmp)), "--allow-everyone-if-no-acl-found", *extra])  # fmt: skip
    proc.start()
    return proc


@pytest.fixture(scope="module")
def sasl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    proc = _start(tmp_path_factory.mktemp("sasl"), [])
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def sasl_ssl_server(tmp_path_factory: pytest.TempPathFactory, certs: dict[str, Path]) -> Iterator[SecureServer]:
    proc = _start(tmp_path_factory.mktemp("sasl-ssl"), tls_args(certs))
    try:
        yield proc
    finally:
        proc.kill()


def _servers(request: pytest.FixtureRequest, protocol: str) -> SecureServer:
    return request.getfixturevalue("sasl_ssl_server" if protocol == "SASL_SSL" else "sasl_server")


def _create_topic(config: dict[str, Any]) -> str:
    name = f"sec-{next(_names)}"
    admin = AdminClient(config)  # kept alive until the future is done
    admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=10)[name].result(timeout=10)
    return name


def _consume(config: dict[str, Any], topic: str, count: int) -> list[bytes]:
    consumer = Consumer({**config, "group.id": f"g-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 15
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append(msg.value())
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_confluent_round_trip(request: pytest.FixtureRequest, certs: dict[str, Path], protocol: str,
                              mechanism: str) -> None:  # fmt: skip
    server = _servers(request, protocol)
    config = confluent_config(server, protocol=protocol, mechanism=mechanism, user="bob", ca=certs["ca"])
    topic = _create_topic(config)
    producer = Producer({**config, "message.timeout.ms": 10000})
    errors: list[Any] = []
    for i in range(3):
        producer.produce(topic, f"{mechanism}-{i}".encode(), on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(15) == 0
    assert errors == [None, None, None]
    assert _consume(config, topic, 3) == [f"{mechanism}-{i}".encode() for i in range(3)]
    assert f"authenticated as User:bob with SASL {mechanism}" in server.log()


def test_tls_without_sasl(tmp_path: Path, certs: dict[str, Path]) -> None:
    server = SecureServer(tmp_path / "data", tmp_path / "server.log", tls_args(certs))
    server.start()
    try:
        assert "(SSL)" in server.log()
        config = confluent_config(server, protocol="SSL", ca=certs["ca"])
        topic = _create_topic(config)  # no users: no authorization either, as before
        producer = Producer(config)
        producer.produce(topic, b"over tls")
        assert producer.flush(10) == 0
        assert _consume(config, topic, 1) == [b"over tls"]
        # A client that does not trust the server's CA is refused by the handshake.
        untrusting = {**config, "ssl.ca.location": str(certs["server"])}
        with pytest.raises(KafkaException):
            AdminClient(untrusting).list_topics(timeout=1)
    finally:
        server.kill()


def _tls_api_versions(port: int, ca: Path) -> int:
    """ApiVersions over a fresh TLS connection: its error code."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as sock:  # fmt: skip
        sock.sendall(_frame(18, 0, 1, b""))
        reader = sock.makefile("rb")
        (size,) = struct.unpack(">i", reader.read(4))
        return int(struct.unpack_from(">ih", reader.read(size))[1])


def _held_open(sock: socket.socket) -> bool:
    """Whether the server keeps ``sock`` open (waiting for its TLS hello) rather than having
    refused it: a refused one reads as closed or reset at once."""
    sock.settimeout(0.3)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(5)


def test_connections_in_their_tls_handshake_count_against_max_connections_per_ip(
    tmp_path: Path, certs: dict[str, Path]
) -> None:
    """Peers that connect and never handshake hold a place each: a listener that handshakes
    before counting would let any number of them pile up."""
    server = SecureServer(tmp_path / "data", tmp_path / "server.log",
                          [*tls_args(certs), "--max-connections-per-ip", "2"])  # fmt: skip
    server.start()
    stalled: list[socket.socket] = []
    try:
        assert _tls_api_versions(server.port, certs["ca"]) == 0
        # That connection's place comes back when the server has seen it close: until then a
        # stalled peer may be the one refused. Open the two until the server holds both.
        deadline = time.monotonic() + 10
        while True:
            stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
            if all(_held_open(sock) for sock in stalled):
                break
            for sock in stalled:
                sock.close()
            stalled = []
            assert time.monotonic() < deadline, "the server never held two connections from one address"
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while True:  # once the server has accepted (and counted) both, a third is closed unshaken
            try:
                _tls_api_versions(server.port, certs["ca"])
            except (ssl.SSLError, ConnectionError, OSError):
                break
            assert time.monotonic() < deadline, "a third connection got through while two were handshaking"
            time.sleep(0.1)
        stalled.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the closed one's place is free again
            try:
                assert _tls_api_versions(server.port, certs["ca"]) == 0
                break
            except (ssl.SSLError, ConnectionError, OSError):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        log = server.log()
        assert "max.connections.per.ip" in log
        assert "Traceback" not in log
    finally:
        for sock in stalled:
            sock.close()
        server.kill()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_is_an_authentication_error(sasl_server: SecureServer, mechanism: str) -> None:
    config = confluent_config(sasl_server, protocol="SASL_PLAINTEXT", mechanism=mechanism, password="wrong")
    seen: list[KafkaError] = []
    producer = Producer({**config, "error_cb": seen.append})
    deadline = time.monotonic() + 10
    while not any(e.code() == KafkaError._AUTHENTICATION for e in seen) and time.monotonic() < deadline:
        producer.poll(0.2)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in seen), seen
    failure = next(e for e in seen if e.code() == KafkaError._AUTHENTICATION)
    assert "invalid credentials" in failure.str()
    log = sasl_server.log()
    lines = [line for line in log.splitlines() if f"SASL {mechanism} authentication failed for user 'alice'" in line]
    assert lines and all(" WARNING " in line for line in lines)
    assert "Traceback" not in log


def test_unknown_user_is_refused(sasl_server: SecureServer) -> None:
    config = confluent_config(sasl_server, protocol="SASL_PLAINTEXT", mechanism="SCRAM-SHA-256", password="x")
    config["sasl.username"] = "mallory"
    with pytest.raises(KafkaException):
        AdminClient(config).list_topics(timeout=2)
    assert "SASL SCRAM-SHA-256 authentication failed for user 'mallory'" in sasl_server.log()


def _frame(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation_id, len(b"raw")) + b"raw"
    return struct.pack(">i", len(header) + len(body)) + header + body


def test_requests_before_authentication_close_the_connection(sasl_server: SecureServer) -> None:
    with socket.create_connection(("127.0.0.1", sasl_server.port), timeout=5) as sock:
        # Metadata v1 for all topics (a null topic array) before any SASL exchange.
        sock.sendall(_frame(3, 1, 7, struct.pack(">i", -1)))
        assert sock.recv(4096) == b""  # closed, nothing answered
    assert "Metadata before SASL authentication; closing the connection" in sasl_server.log()


def test_large_frame_before_authentication_closes_the_connection(sasl_server: SecureServer) -> None:
    with socket.create_connection(("127.0.0.1", sasl_server.port), timeout=5) as sock:
        sock.sendall(struct.pack(">i", 600 * 1024))  # over sasl.server.max.receive.size, nothing follows
        assert sock.recv(4096) == b""
    assert "a 614400-byte request before SASL authentication" in sasl_server.log()


def _string(value: str) -> bytes:
    return struct.pack(">h", len(value)) + value.encode()


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    # A socket with a timeout is non-blocking underneath: MSG_WAITALL does not wait there.
    data = b""
    while len(data) < size:
        piece = sock.recv(size - len(data))
        if not piece:
            break
        data += piece
    return data


def _read_response(sock: socket.socket) -> bytes:
    size = struct.unpack(">i", _read_exactly(sock, 4))[0]
    return _read_exactly(sock, size)


def test_handshake_v0_and_authenticate_without_handshake_are_refused(sasl_server: SecureServer) -> None:
    with socket.create_connection(("127.0.0.1", sasl_server.port), timeout=5) as sock:
        sock.sendall(_frame(17, 0, 1, _string("PLAIN")))  # v0: raw tokens would follow
        correlation_id, code = struct.unpack_from(">ih", _read_response(sock))
        assert (correlation_id, code) == (1, 34)  # ILLEGAL_SASL_STATE
        sock.sendall(_frame(18, 0, 2, b""))
        assert sock.recv(4096) == b""  # closed: the exchange failed
    with socket.create_connection(("127.0.0.1", sasl_server.port), timeout=5) as sock:
        sock.sendall(_frame(36, 0, 3, struct.pack(">i", 1) + b"x"))  # SaslAuthenticate v0, no handshake
        correlation_id, code = struct.unpack_from(">ih", _read_response(sock))
        assert (correlation_id, code) == (3, 34)
    assert "Traceback" not in sasl_server.log()


def test_plaintext_client_cannot_reach_a_tls_listener(sasl_ssl_server: SecureServer) -> None:
    config = {"bootstrap.servers": sasl_ssl_server.bootstrap, "security.protocol": "PLAINTEXT"}
    with pytest.raises(KafkaException):
        AdminClient(config).list_topics(timeout=2)
    assert "Traceback" not in sasl_ssl_server.log()


def test_kafka_python_sasl_ssl_scram(sasl_ssl_server: SecureServer, certs: dict[str, Path]) -> None:
    topic = _create_topic(confluent_config(sasl_ssl_server, protocol="SASL_SSL", ca=certs["ca"]))
    common: dict[str, Any] = {
        "bootstrap_servers": sasl_ssl_server.bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": USERS["alice"],
        "ssl_cafile": str(certs["ca"]),
    }
    producer = KafkaProducer(acks="all", **common)
    try:
        for i in range(3):
            producer.send(topic, f"kp-{i}".encode()).get(timeout=15)
    finally:
        producer.close()
    consumer = KafkaConsumer(consumer_timeout_ms=5000, **common)
    try:
        consumer.assign([KpTopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        values = [m.value for _, m in zip(range(3), consumer, strict=False)]
    finally:
        consumer.close()
    assert values == [b"kp-0", b"kp-1", b"kp-2"]
    assert "authenticated as User:alice with SASL SCRAM-SHA-512" in sasl_ssl_server.log()


def test_kcat_sasl_ssl_scram(sasl_ssl_server: SecureServer, certs: dict[str, Path]) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed (.ci/run installs it with apt)")
    topic = _create_topic(confluent_config(sasl_ssl_server, protocol="SASL_SSL", ca=certs["ca"]))
    options = ["-b", sasl_ssl_server.bootstrap, "-X", "security.protocol=SASL_SSL", "-X",
               "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=bob", "-X", f"sasl.password={USERS['bob']}",
               "-X", f"ssl.ca.location={certs['ca']}"]  # fmt: skip

    def run(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([kcat, *options, *args], input=stdin, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("-P", "-t", topic, "-K:", stdin="k1:v1\nk2:v2\n")
    assert run("-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k=%s\n").splitlines() == ["k1=v1", "k2=v2"]


# the mechanisms themselves, without a server --------------------------------------------
def test_scram_sha256_matches_rfc7677_example() -> None:
    # RFC 7677 section 3: user "user", password "pencil".
    users = Users()
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    users.add("user", "pencil", salt=salt)
    auth = ScramAuthenticator(users, "SCRAM-SHA-256")
    first = auth.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").decode()
    nonce = first.split(",")[0][2:]
    assert first == f"r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" and nonce.startswith("rOprNGfwEbeRWgbNEkqO")
    # The client side of RFC 5802, computed here since the server nonce is random.
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c=biws,r={nonce}"
    auth_message = f"n=user,r=rOprNGfwEbeRWgbNEkqO,{first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    final = auth.step(f"{without_proof},p={proof}".encode()).decode()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    assert final == "v=" + base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
    assert auth.principal == "User:user"
    with pytest.raises(AuthenticationError):
        auth.step(b"c=biws")  # the exchange is over


def test_scram_nonce_checks_and_unknown_mechanisms() -> None:
    users = Users({"alice": "alice-secret"})
    auth = ScramAuthenticator(users, "SCRAM-SHA-256")
    nonce = auth.step(b"n,,n=alice,r=cn").decode().split(",")[0][2:]
    with pytest.raises(AuthenticationError, match="nonce"):
        auth.step(f"c=biws,r={nonce}x,p=AAAA".encode())
    # librdkafka < 2.6.1 repeats its own nonce in front: accepted (the proof still decides).
    auth = ScramAuthenticator(users, "SCRAM-SHA-256")
    nonce = auth.step(b"n,,n=alice,r=cn").decode().split(",")[0][2:]
    with pytest.raises(AuthenticationError, match="invalid credentials"):
        auth.step(f"c=biws,r=cn{nonce},p=AAAA".encode())
    with pytest.raises(UnsupportedSaslMechanismError, match="GSSAPI"):
        authenticator_for("GSSAPI", users, ("PLAIN",))
    with pytest.raises(UnsupportedSaslMechanismError):
        authenticator_for("SCRAM-SHA-512", users, ("PLAIN",))


@pytest.mark.parametrize(
    "token",
    [b"", b"\0alice", b"\xff\0alice\0pw", b"bob\0alice\0alice-secret", b"\0alice\0wrong", b"\0\0alice-secret"],
)
def test_plain_refuses_malformed_or_wrong_tokens(token: bytes) -> None:
    auth = PlainAuthenticator(Users({"alice": "alice-secret"}))
    with pytest.raises(AuthenticationError):
        auth.step(token)
    assert auth.principal is None


@pytest.mark.parametrize(
    "first",
    [b"p=tls-unique,,n=alice,r=abc", b"n,,r=abc,n=alice", b"n,,n=alice", b"x,,n=alice,r=abc",
     b"n,a=bob,n=alice,r=abc", b"n,,n=alice,r=abc,t=tokenauth=true", b"n,,n=al=ice,r=abc"],
)  # fmt: skip
def test_scram_refuses_malformed_client_first(first: bytes) -> None:
    auth = ScramAuthenticator(Users({"alice": "alice-secret"}), "SCRAM-SHA-256")
    with pytest.raises(AuthenticationError):
        auth.step(first)


def test_users_file_format(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# comment\n\nalice:a:b:c\n  # indented comment\nbob:pw\n")
    users = Users.load(path, ["carol:pc"])
    assert users.names() == ["alice", "bob", "carol"]
    assert users.check_password("alice", "a:b:c") and not users.check_password("alice", "a")
    assert not users.check_password("nobody", "x")
    for bad in ("no-colon\n", ":pw\n", "dave:\n", " eve:pw\n"):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=str(path)):
            Users.load(path)


# the --insecure rule ------------------------------------------------------------------
def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamlab.cli.main", "serve", "--data", str(tmp_path / "data"),
         "--port", str(free_port()), *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_non_loopback_host_without_users_is_refused(tmp_path: Path, host: str) -> None:
    done = _serve(tmp_path, "--host", host)
    assert done.returncode == 2
    assert f"refusing to serve on {host} without authentication" in done.stderr
    assert "--insecure" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before opening anything


def test_security_options_are_checked_before_serving() -> None:
    parser = cli_main.build_parser()
    from streamlab.cli.serve import _security

    def security(*args: str) -> Any:
        return _security(parser.parse_args(["serve", *args]))

    # Accepted without starting a server: --insecure, or users, on a non-loopback host.
    assert security("--host", "0.0.0.0", "--insecure").users is None
    secured = security("--host", "0.0.0.0", "--user", "alice:pw", "--super-users", "User:alice;User:bob")
    assert secured.protocol == "SASL_PLAINTEXT" and secured.super_users == {"User:alice", "User:bob"}
    assert security("--host", "127.0.0.1").protocol == "PLAINTEXT"
    assert security("--host", "::1").users is None
    assert security("--host", "localhost").users is None
    for host in ("192.0.2.1", "example.com", "10.1.2.3"):
        with pytest.raises(ConfigError, match=f"refusing to serve on {host} without authentication"):
            security("--host", host)
    with pytest.raises(ConfigError, match="GSSAPI"):
        security("--user", "a:b", "--sasl-mechanisms", "GSSAPI")
    with pytest.raises(ConfigError, match="need users"):
        security("--super-users", "User:alice")
    with pytest.raises(ConfigError, match="TLS certificate"):
        security("--tls-cert", "/nonexistent.pem")
