"""The errors the SDK raises: one class per answer a caller acts on differently.

Every error from the group is a :class:`KairosError` carrying the gRPC code, the
server's message, the endpoint that answered and, for ``INVALID_ARGUMENT``, the
offending field (the ``kairos-field`` metadata). Subclasses exist for the answers a
program branches on: :class:`NotFound`, :class:`InvalidArgument`,
:class:`FailedPrecondition`, :class:`PermissionDenied`, :class:`Unauthenticated`,
and :class:`Unavailable` (no endpoint could serve the call within the client's
attempts and time).

Two errors describe what the SDK itself knows about a call rather than a single
answer: :class:`RunOutcomeUnknown` (a ``RunJob`` was sent and no answer came back,
so the run may or may not have started; the SDK never sends it again on its own)
and :class:`WaitTimeout` (a run was still going when ``run_and_wait`` gave up).
:class:`JobDocumentError` is a job document that cannot be read, raised before
anything is sent.
"""

from __future__ import annotations

from typing import Optional, Sequence

import grpc


class KairosError(Exception):
    """An answer from the scheduler group, or the lack of one.

    Attributes:
        code: the gRPC status code (``None`` for errors the SDK raises itself).
        message: the server's message, as it said it.
        endpoint: the scheduler that answered (``host:port``), when one did.
        field: for ``INVALID_ARGUMENT``, the field the server named.
    """

    def __init__(
        self,
        message: str,
        *,
        code: Optional[grpc.StatusCode] = None,
        endpoint: Optional[str] = None,
        field: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.endpoint = endpoint
        self.field = field

    def __str__(self) -> str:
        code = f" [{self.code.name.lower()}]" if self.code is not None else ""
        where = f" (from {self.endpoint})" if self.endpoint else ""
        return f"{self.message}{code}{where}"


class NotFound(KairosError):
    """The job or execution does not exist."""


class InvalidArgument(KairosError):
    """The request was refused before anything was stored; ``field`` names why."""


class AlreadyExists(KairosError):
    """Something with that name exists already."""


class FailedPrecondition(KairosError):
    """The state does not allow it (a stale version, a job already running under
    ``concurrency: forbid``, a parent with children...)."""


class PermissionDenied(KairosError):
    """The caller's role does not allow the call."""


class Unauthenticated(KairosError):
    """No valid credential: a missing, unknown or revoked token."""


class Unavailable(KairosError):
    """No endpoint could serve the call within the client's attempts and time.

    ``attempts`` lists what each try met, oldest first (``endpoint: reason``).
    """

    def __init__(self, message: str, *, attempts: Sequence[str] = (), **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.attempts = list(attempts)

    def __str__(self) -> str:
        tried = "".join(f"\n  {a}" for a in self.attempts)
        return super().__str__() + tried


class RunOutcomeUnknown(KairosError):
    """A ``RunJob`` reached a scheduler and no definite answer came back.

    ``RunJobRequest`` carries nothing that would let the group recognise the same
    request twice, so sending it again could start a second run; the SDK does not.
    Whether the run started is for the caller to find out: ``candidates`` holds the
    manual executions of the job created since the request was sent, as far as the
    SDK could list them afterwards (``None`` when it could not list at all). An
    empty list means none was found at that moment.
    """

    def __init__(
        self,
        message: str,
        *,
        job: str,
        candidates: Optional[list] = None,
        **kwargs,
    ) -> None:
        super().__init__(message, **kwargs)
        self.job = job
        self.candidates = candidates


class RunQueued(KairosError):
    """The run was accepted but queued behind the running execution
    (``concurrency: queue``): no execution exists yet to wait for."""


class WaitTimeout(KairosError, TimeoutError):
    """The execution had not ended when the wait ran out; ``execution`` is its last
    known state. The run goes on."""

    def __init__(self, message: str, *, execution: object, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.execution = execution


class JobDocumentError(ValueError):
    """A job document that cannot be read: the message names the source, the
    document (``document 2``, ``item 3``) and the problem."""


_BY_CODE = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def from_rpc_error(error: grpc.RpcError, endpoint: str) -> KairosError:
    """The :class:`KairosError` subclass for a failed call's status."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    return from_status(code, details, endpoint, field=trailing(error, "kairos-field"))


def from_status(
    code: grpc.StatusCode, details: str, endpoint: Optional[str], *, field: Optional[str] = None
) -> KairosError:
    """The :class:`KairosError` subclass for a status code and its message."""
    cls = _BY_CODE.get(code, KairosError)
    return cls(details, code=code, endpoint=endpoint, field=field)


def trailing(error: grpc.RpcError, key: str) -> Optional[str]:
    """The value of trailing metadata ``key`` of a failed call, if it has one."""
    try:
        metadata = error.trailing_metadata() or ()
    except Exception:  # a call that never reached a server has none
        return None
    for k, v in metadata:
        if k == key:
            return v.decode() if isinstance(v, bytes) else v
    return None
