"""Errors raised by the client. Every one is a :class:`GlossError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import grpc

if TYPE_CHECKING:
    from .v1.datasets_pb2 import ImportSummary, RecordError

#: Trailer carrying the server's error code (`not_leader`, `unavailable`, `not_found`, ...).
CODE_METADATA = "gloss-code"
#: Trailer carrying the leader's public address on a `not_leader` answer.
LEADER_METADATA = "gloss-leader"
#: Trailer carrying a status's binary details (an encoded ImportSummary on a rejected import).
DETAILS_METADATA = "grpc-status-details-bin"


class GlossError(Exception):
    """A call to the cluster failed.

    Attributes:
        code: the gRPC status code, or None for errors found before any call.
        gloss_code: the server's own error code (`not_found`, `not_leader`, ...), when it sent one.
        details: the server's message.
        server: the coordinator that answered (HOST:PORT), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        code: Optional[grpc.StatusCode] = None,
        gloss_code: Optional[str] = None,
        details: str = "",
        server: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.gloss_code = gloss_code
        self.details = details or message
        self.server = server

    @classmethod
    def from_rpc(cls, err: grpc.RpcError, server: Optional[str] = None, note: str = "") -> "GlossError":
        """The error for a failed gRPC call, `note` appended to its message."""
        code, details, trailers = rpc_parts(err)
        message = f"{code.name if code else 'UNKNOWN'}: {details}"
        if note:
            message = f"{message} ({note})"
        gloss_code = trailers.get(CODE_METADATA)
        return cls(
            message,
            code=code,
            gloss_code=gloss_code if isinstance(gloss_code, str) else None,
            details=details,
            server=server,
        )


class NoServerAvailable(GlossError):
    """No coordinator of the list could be reached (within the client's patience)."""


class WriteOutcomeUnknown(GlossError):
    """A write without an idempotency key failed in a way that leaves open whether it was
    applied (the connection broke, or the cluster lost its leader mid-write). It was not retried,
    as a repeat could apply it twice: check the cluster's state before trying again."""


class InvalidRecord(GlossError, ValueError):
    """A record handed to :meth:`Client.import_records` cannot be sent (not a mapping, or a value
    that has no JSON form). Nothing was imported: the import was cancelled.

    Attributes:
        index: 1-based position of the record in the records given (its line in the import).
        field: the field at fault, when one is.
    """

    def __init__(self, index: int, reason: str, field: Optional[str] = None) -> None:
        where = f"record {index}" + (f", field `{field}`" if field else "")
        super().__init__(f"{where}: {reason}")
        self.index = index
        self.field = field


class ImportRejected(GlossError):
    """The server rejected an import because of invalid records; nothing was imported.

    The message lists the first invalid records as `line N, field `F`: reason`, where line N is
    the N-th record given (counting from 1). :attr:`summary` is the server's ImportSummary;
    :attr:`errors` its RecordError list (the first 100).
    """

    def __init__(self, message: str, summary: "ImportSummary", *, server: Optional[str] = None) -> None:
        super().__init__(
            message, code=grpc.StatusCode.INVALID_ARGUMENT, gloss_code="invalid_argument", server=server
        )
        self.summary = summary

    @property
    def errors(self) -> Sequence["RecordError"]:
        """The invalid records the server listed (line, field, reason)."""
        return list(self.summary.errors)


class ImportInterrupted(GlossError):
    """An import broke after records had been read from a one-shot iterator, so it could not be
    sent again. The server commits an import only once it has read the whole stream, so nothing
    became visible unless the break hid the commit's answer; importing the same records again is
    safe either way (records whose text is already in the dataset are skipped as duplicates).

    Attributes:
        records_read: records read from the iterator before the break.
    """

    def __init__(self, message: str, records_read: int, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.records_read = records_read


def rpc_parts(err: grpc.RpcError) -> "tuple[Optional[grpc.StatusCode], str, dict[str, object]]":
    """(code, details, trailing metadata as a dict) of a failed call."""
    code = err.code() if hasattr(err, "code") else None  # type: ignore[attr-defined]
    details = (err.details() if hasattr(err, "details") else None) or str(err)  # type: ignore[attr-defined]
    trailers: dict[str, object] = {}
    raw = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None  # type: ignore[attr-defined]
    for key, value in raw or ():
        trailers[key] = value
    return code, details, trailers
