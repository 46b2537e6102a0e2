"""The call machinery under :class:`gloss_client.Client`: unary and server-streaming calls with
failover across coordinators (see :mod:`gloss_client._failover` for when a call is repeated)."""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator, Optional, Sequence, Tuple

import grpc

from ._failover import Conn, Outcome, Pool, classify
from .errors import GlossError, WriteOutcomeUnknown, rpc_parts

log = logging.getLogger("gloss_client")

#: Largest message accepted from the server (exports and task listings can be large).
MAX_RECEIVE = 64 << 20


class Caller:
    """Runs calls on the coordinator in use and moves to another one when the rule allows."""

    def __init__(
        self,
        pool: Pool,
        metadata: Sequence[Tuple[str, str]],
        patience: float,
        call_timeout: Optional[float],
    ) -> None:
        self.pool = pool
        self.metadata = tuple(metadata)
        self.patience = patience
        self.call_timeout = call_timeout

    def deadline(self) -> float:
        """When retries stop, for a call starting now."""
        return time.monotonic() + self.patience

    def pause(self, attempt: int) -> None:
        """Waits before attempt `attempt` (1, 2, ...): 0.1 s doubling up to 1 s."""
        time.sleep(min(0.1 * (2 ** (attempt - 1)), 1.0))

    def handle(self, err: grpc.RpcError, conn: Conn, safe: bool, deadline: float, what: str) -> None:
        """Raises the error for a failed call unless it may be repeated (then moves to another
        coordinator and returns)."""
        code, details, trailers = rpc_parts(err)
        outcome, leader = classify(code, trailers, details)
        if outcome is Outcome.FAIL:
            raise GlossError.from_rpc(err, conn.address) from None
        if outcome is Outcome.MAYBE_DONE and not safe:
            raise WriteOutcomeUnknown.from_rpc(
                err,
                conn.address,
                f"{what} carries no idempotency key and may have been applied, so it was not repeated",
            ) from None
        if time.monotonic() >= deadline:
            raise GlossError.from_rpc(err, conn.address, f"gave up after {self.patience:g}s of retries") from None
        log.info("%s on %s failed (%s: %s); trying another coordinator", what, conn.address, code, details)
        self.pool.fail_over(conn, leader)

    def unary(self, stub: type, method: str, request: Any, *, safe: bool) -> Any:
        """`stub.method(request)`, repeated on other coordinators as the rule allows; `safe`:
        the call is a read or a write carrying an idempotency key."""
        deadline = self.deadline()
        attempt = 0
        while True:
            conn = self.pool.current(deadline)
            call = getattr(conn.stub(stub), method)
            try:
                return call(request, metadata=self.metadata, timeout=self.call_timeout)
            except grpc.RpcError as err:
                self.handle(err, conn, safe, deadline, method)
            attempt += 1
            self.pause(attempt)

    def stream(self, stub: type, method: str, request: Any) -> Iterator[Any]:
        """The messages of a server-streaming read. It is repeated on another coordinator when it
        fails before its first message; a break after that raises (what was yielded cannot be
        taken back)."""
        deadline = self.deadline()
        attempt = 0
        while True:
            conn = self.pool.current(deadline)
            call = getattr(conn.stub(stub), method)(request, metadata=self.metadata)
            got = 0
            try:
                for message in call:
                    got += 1
                    yield message
                return
            except grpc.RpcError as err:
                if got:
                    raise GlossError.from_rpc(
                        err, conn.address, f"the {method} stream broke after {got} message(s)"
                    ) from None
                self.handle(err, conn, True, deadline, method)
            finally:
                call.cancel()  # a no-op once the stream ended; stops it when the caller stops early
            attempt += 1
            self.pause(attempt)
