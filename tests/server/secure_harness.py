"""`streamlab serve` with security options, and a throwaway CA for its TLS tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import ServerProcess

USERS = {"alice": "alice-secret", "bob": "bob:secret=", "admin": "admin-secret"}


class SecureServer(ServerProcess):
    """A ServerProcess started with extra ``streamlab serve`` options (given positionally)."""

    def __init__(self, data_dir: Path, log_path: Path, args: list[str]) -> None:
        super().__init__(data_dir, log_path, args=tuple(args))


def users_file(directory: Path) -> Path:
    path = directory / "users.txt"
    path.write_text("# test users\n\n" + "".join(f"{name}:{password}\n" for name, password in USERS.items()))
    return path


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for localhost/127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make test certificates and is not installed")
    paths = {name: directory / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key", "server-csr")}
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=30)

    run("req", "-x509", *ec, "-keyout", str(paths["ca-key"]), "-out", str(paths["ca"]), "-days", "2",
        "-subj", "/CN=streamlab test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", str(paths["server-key"]), "-out", str(paths["server-csr"]), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(paths["server-csr"]), "-CA", str(paths["ca"]), "-CAkey", str(paths["ca-key"]),
        "-CAcreateserial", "-out", str(paths["server"]), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return paths


def tls_args(certs: dict[str, Path]) -> list[str]:
    return ["--tls-cert", str(certs["server"]), "--tls-key", str(certs["server-key"])]


def confluent_config(server: ServerProcess, *, protocol: str, mechanism: str = "PLAIN", user: str = "alice",
                     password: str | None = None, ca: Path | None = None) -> dict[str, Any]:  # fmt: skip
    config: dict[str, Any] = {"bootstrap.servers": server.bootstrap, "security.protocol": protocol}
    if protocol.startswith("SASL"):
        config.update({"sasl.mechanisms": mechanism, "sasl.username": user,
                       "sasl.password": USERS[user] if password is None else password})  # fmt: skip
    if protocol.endswith("SSL"):
        assert ca is not None
        config["ssl.ca.location"] = str(ca)
    return config
