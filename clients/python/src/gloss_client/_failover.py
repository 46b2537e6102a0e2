"""Connections to a list of coordinators, and the rule for when a failed call may be repeated.

The rule is the Rust client's (`gloss_client::Client::retry`): only UNAVAILABLE moves a call to
another coordinator. Whether it may be repeated there depends on what the failure proves:

* `gloss-code: not_leader` (or a `gloss-leader` hint): the coordinator refused before doing
  anything, and a connection that could not be made carried nothing; any call may be repeated.
* any other UNAVAILABLE (the cluster lost its leader mid-write, the connection broke mid-call):
  the call may have been applied. Reads, and writes carrying an idempotency key (the server
  applies a key once and answers repeats with the first result), are repeated; other writes are
  not (:class:`~gloss_client.errors.WriteOutcomeUnknown`).
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc

from .errors import CODE_METADATA, LEADER_METADATA, NoServerAvailable

# Phrases gRPC uses when no connection could be made, so nothing was sent.
_NOT_CONNECTED = (
    "failed to connect to all addresses",
    "connection refused",
    "dns resolution failed",
    "name resolution failure",
)


class Outcome(enum.Enum):
    """What a failed call proves about whether it was applied."""

    #: Not a failover error: report it.
    FAIL = "fail"
    #: Nothing was done: repeat anywhere.
    NOTHING_DONE = "nothing_done"
    #: It may have been applied: repeat only reads and keyed writes.
    MAYBE_DONE = "maybe_done"


def classify(
    code: Optional[grpc.StatusCode], trailers: Mapping[str, Any], details: str
) -> Tuple[Outcome, Optional[str]]:
    """The outcome of a failed call and the leader's address when the server named it."""
    if code != grpc.StatusCode.UNAVAILABLE:
        return Outcome.FAIL, None
    leader = trailers.get(LEADER_METADATA)
    leader = leader if isinstance(leader, str) and leader else None
    gloss_code = trailers.get(CODE_METADATA)
    if gloss_code == "not_leader" or leader:
        return Outcome.NOTHING_DONE, leader
    if gloss_code is None and any(p in (details or "").lower() for p in _NOT_CONNECTED):
        return Outcome.NOTHING_DONE, None
    return Outcome.MAYBE_DONE, None


def normalize(servers: "str | Sequence[str]") -> Tuple[List[str], bool]:
    """`h:port`, `h1:p,h2:p` or a list of them (each optionally `http://` / `https://`) as a list
    of HOST:PORT, and whether any asked for TLS (`https://`)."""
    items = [servers] if isinstance(servers, str) else list(servers)
    out: List[str] = []
    tls = False
    for item in items:
        for part in str(item).split(","):
            part = part.strip().rstrip("/")
            if not part:
                continue
            if part.startswith("https://"):
                tls, part = True, part[len("https://") :]
            elif part.startswith("http://"):
                part = part[len("http://") :]
            if ":" not in part:
                raise ValueError(f"server {part!r}: expected HOST:PORT")
            out.append(part)
    if not out:
        raise ValueError("no server given")
    return out, tls


@dataclass
class Conn:
    """A connection to one coordinator, with its service stubs."""

    address: str
    raw: grpc.Channel
    channel: grpc.Channel
    stubs: Dict[type, Any] = field(default_factory=dict)

    def stub(self, cls: type) -> Any:
        """The `cls` stub (e.g. DatasetServiceStub) over this connection."""
        s = self.stubs.get(cls)
        if s is None:
            s = self.stubs[cls] = cls(self.channel)
        return s


def _ready(channel: grpc.Channel, timeout: float) -> bool:
    """Whether `channel` connects within `timeout`; False at once on a refused connection."""
    done = threading.Event()
    state: List[grpc.ChannelConnectivity] = []

    def watch(s: grpc.ChannelConnectivity) -> None:
        state.append(s)
        if s in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                 grpc.ChannelConnectivity.SHUTDOWN):
            done.set()

    channel.subscribe(watch, try_to_connect=True)
    try:
        done.wait(timeout)
    finally:
        channel.unsubscribe(watch)
    return bool(state) and state[-1] == grpc.ChannelConnectivity.READY


class Pool:
    """The coordinator in use, and the move to another one. Safe to share between threads."""

    def __init__(
        self,
        servers: List[str],
        credentials: Optional[grpc.ChannelCredentials],
        options: Sequence[Tuple[str, Any]],
        interceptors: Sequence[Any],
        connect_timeout: float,
    ) -> None:
        self.servers = servers
        self._credentials = credentials
        self._options = list(options)
        self._interceptors = list(interceptors)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Optional[Conn] = None
        self._closed = False

    def _open(self, address: str) -> Optional[Conn]:
        if self._credentials is not None:
            raw = grpc.secure_channel(address, self._credentials, options=self._options)
        else:
            raw = grpc.insecure_channel(address, options=self._options)
        if not _ready(raw, self._connect_timeout):
            raw.close()
            return None
        channel = grpc.intercept_channel(raw, *self._interceptors) if self._interceptors else raw
        return Conn(address, raw, channel)

    def _connect(self, order: Sequence[str]) -> Optional[Conn]:
        for address in order:
            conn = self._open(address)
            if conn is not None:
                return conn
        return None

    def current(self, deadline: float) -> Conn:
        """The connection in use, connecting to the first reachable server of the list (trying
        again until `deadline`, a time.monotonic() value) when there is none."""
        while True:
            with self._lock:
                if self._closed:
                    raise NoServerAvailable("the client is closed")
                if self._conn is None:
                    self._conn = self._connect(self.servers)
                if self._conn is not None:
                    return self._conn
            if time.monotonic() >= deadline:
                raise NoServerAvailable(
                    f"cannot reach any Gloss server ({','.join(self.servers)})",
                    code=grpc.StatusCode.UNAVAILABLE,
                )
            time.sleep(0.2)

    def fail_over(self, failed: Conn, leader: Optional[str] = None) -> None:
        """Drops `failed` and connects to the leader named, else to the next reachable server of
        the list after it (so a dead one is tried last). Another thread may have moved already."""
        with self._lock:
            if self._conn is not failed:
                return
            failed.raw.close()
            self._conn = None
            n = len(self.servers)
            start = self.servers.index(failed.address) + 1 if failed.address in self.servers else 0
            order = [self.servers[(start + i) % n] for i in range(n)]
            if leader:
                order = [leader] + [s for s in order if s != leader]
            self._conn = self._connect(order)

    def close(self) -> None:
        """Closes the connection in use; later calls fail."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.raw.close()
                self._conn = None
