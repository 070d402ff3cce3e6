"""Running `streamlab serve` as a subprocess (shared by the server tests' fixtures)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One `streamlab serve` process; its log (stderr) goes to ``log_path``."""

    def __init__(self, data_dir: Path, log_path: Path, *, args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.args = args  # more `streamlab serve` options
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

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

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: a graceful shutdown. Returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """kill -9."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self, *, kill: bool = True) -> None:
        """Stop (by kill -9 unless ``kill=False``) and start again on the same port."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()
