"""`streamlab serve` with security options, and a throwaway CA for its TLS tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from harness import READY_TIMEOUT_S, ServerProcess

USERS = {"alice": "alice-secret", "bob": "bob:secret=", "admin": "admin-secret"}


class SecureServer(ServerProcess):
    """A ServerProcess started with extra ``streamlab serve`` options."""

    def __init__(self, data_dir: Path, log_path: Path, args: list[str]) -> None:
        super().__init__(data_dir, log_path)
        self.args = args

    def start(self) -> None:
        offset = len(self.log())
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamlab.cli.main", "serve", "--data", str(self.data_dir),
                 "--port", str(self.port), *self.args],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "ready" not in self.log()[offset:]:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlab serve exited with {self.process.returncode}:\n{self.log()[offset:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"streamlab serve was not ready after {READY_TIMEOUT_S}s:\n{self.log()[offset:]}")
            time.sleep(0.05)


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
