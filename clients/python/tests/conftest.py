"""A real single-node `gloss up --no-worker` for the whole test session.

The binary is $GLOSS_BIN, else $CARGO_TARGET_DIR/debug/gloss (CARGO_TARGET_DIR defaults to
~/.cache/gloss-target); build it with `cargo build --bin gloss`. A missing binary fails the
session: nothing is skipped.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from gloss_client import Client, GlossError


def gloss_binary() -> Path:
    explicit = os.environ.get("GLOSS_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "gloss-target")
    return Path(target) / "debug" / "gloss"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    address: str
    http: str
    token: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    binary = gloss_binary()
    if not binary.is_file():
        pytest.fail(f"no gloss binary at {binary}: run `cargo build --bin gloss` or set GLOSS_BIN", pytrace=False)
    work = tmp_path_factory.mktemp("gloss")
    token = f"glt_pytest_{secrets.token_hex(16)}"
    token_file = work / "admin-token"
    token_file.write_text(token + "\n")
    grpc_port, http_port, raft_port = free_port(), free_port(), free_port()
    log = work / "gloss.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLOSS_", "OTEL_"))}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "up", "--no-worker",
             "--data-dir", str(work / "data"),
             "--listen", f"127.0.0.1:{grpc_port}",
             "--http", f"127.0.0.1:{http_port}",
             "--raft-listen", f"127.0.0.1:{raft_port}",
             "--admin-token-file", str(token_file)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    srv = Server(f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}", token, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"gloss up exited with {proc.returncode}:\n{srv.log_tail()}", pytrace=False)
            try:
                with urllib.request.urlopen(f"http://{srv.http}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gloss up not ready within 60s:\n{srv.log_tail()}", pytrace=False)
            time.sleep(0.2)
        # The administrator's token is registered once a leader exists, shortly after /readyz.
        with Client(srv.address, token=token) as c:
            while True:
                try:
                    c.list_projects()
                    break
                except GlossError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[Client]:
    with Client(server.address, token=server.token) as c:
        yield c


@pytest.fixture
def project(client: Client) -> str:
    """A new, empty project for one test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    client.create_project(name)
    return name


@pytest.fixture
def dead_address() -> str:
    """A loopback address nothing listens on."""
    return f"127.0.0.1:{free_port()}"
