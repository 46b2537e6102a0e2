"""gRPC client interceptors that fake the failures failover must survive."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import grpc


class FakeFailure(grpc.RpcError):
    """A failed call, usable where gRPC expects a call or a future."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: Sequence[Tuple[str, str]] = ()) -> None:
        super().__init__(details)
        self._code, self._details, self._trailers = code, details, tuple(trailers)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Tuple[Tuple[str, str], ...]:
        return self._trailers

    def initial_metadata(self) -> Tuple[Tuple[str, str], ...]:
        return ()

    def result(self, timeout: Optional[float] = None) -> Any:
        raise self

    def exception(self, timeout: Optional[float] = None) -> "FakeFailure":
        return self

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def running(self) -> bool:
        return False

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)


def _key_of(request: Any) -> str:
    return getattr(request, "idempotency_key", "")


class Faults(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):
    """Fails the first `times` calls of `method` (a name such as "CreateProject").

    lose_answer: the call reaches the server and is applied, then the client sees a broken
    connection (UNAVAILABLE without a server code): the write's outcome is unknown to it.
    not_leader: the coordinator refuses before doing anything (`gloss-code: not_leader`).
    """

    def __init__(self, method: str, mode: str, times: int = 1) -> None:
        assert mode in ("lose_answer", "not_leader")
        self.method, self.mode, self.left = method, mode, times
        self.attempts: List[str] = []  # idempotency key of each attempt ("" for none)

    def _fail(self, details: Any) -> bool:
        return details.method.endswith("/" + self.method) and self.left > 0

    def _failure(self) -> FakeFailure:
        self.left -= 1
        if self.mode == "not_leader":
            return FakeFailure(
                grpc.StatusCode.UNAVAILABLE, "this coordinator is not the leader", [("gloss-code", "not_leader")]
            )
        return FakeFailure(grpc.StatusCode.UNAVAILABLE, "Socket closed (connection reset by peer)")

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method.endswith("/" + self.method):
            self.attempts.append(_key_of(request))
        if not self._fail(details):
            return continuation(details, request)
        if self.mode == "lose_answer":
            continuation(details, request).result()  # applied on the server
        return self._failure()

    def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        if details.method.endswith("/" + self.method):
            self.attempts.append("")
        if not self._fail(details):
            return continuation(details, request_iterator)
        if self.mode == "lose_answer":
            continuation(details, request_iterator).result()  # the whole import is committed
        return self._failure()  # not_leader: refused before a byte was read


class Proxy:
    """A TCP proxy on a loopback port in front of `upstream`: a coordinator that can die."""

    def __init__(self, upstream: str) -> None:
        import socket
        import threading

        self._socket, self._threading = socket, threading
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: List[Any] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            if self.stopped:
                down.close()
                return
            up = self._socket.create_connection(self.upstream)
            self.open += [down, up]
            for a, b in ((down, up), (up, down)):
                self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def kill(self) -> None:
        """Stops listening and drops every connection, like a coordinator that died."""
        self.stopped = True
        try:
            self.listener.shutdown(self._socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        self.listener.close()
        for s in self.open:
            try:
                s.shutdown(self._socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
