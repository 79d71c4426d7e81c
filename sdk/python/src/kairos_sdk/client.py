"""The client: Kairos's public gRPC API behind typed methods that find the leader.

A :class:`Client` is given every scheduler of a group and keeps one gRPC channel per
scheduler it has spoken to. Any scheduler serves every public call: followers answer
reads after a read barrier (so a read sees every write acknowledged before it) and
forward writes to the leader. The client therefore needs no leader to talk to; what
it adds is riding through the moments when the scheduler it talks to cannot help.

Leader-following, the one rule every call goes through:

- a call starts at the scheduler that last answered (the first endpoint at first);
- an ``UNAVAILABLE`` answer carrying trailing metadata ``kairos-leader`` (a follower
  that could not hand the request on) means "ask that one": the next try goes to
  the named address, which is added to the known endpoints if it is new;
- an ``UNAVAILABLE`` without it (no leader yet, an election under way), a scheduler
  that cannot be reached, or a try that outlives ``attempt_timeout``, moves to the
  next endpoint of the list; after a round over all of them the client pauses
  (0.1 s, doubling to 1 s) before the next round;
- every call is bounded: at most ``max_attempts`` tries and ``timeout`` seconds in
  all, after which :class:`~kairos_sdk.errors.Unavailable` lists what each try
  met. Every other error (``NOT_FOUND``, ``INVALID_ARGUMENT``, ``PERMISSION_DENIED``...)
  is the group's answer and is raised at once, never retried.

Which calls are retried after an ambiguous failure (a try that reached a scheduler
and got no definite answer: the connection broke, the deadline passed, the leader
died while forwarding), and why that is safe:

- reads (``get_job``, ``list_jobs``, ``get_execution``, ``list_executions``,
  ``cluster_status``, ``executors``): they change nothing;
- ``apply`` (PutJob): an upsert by name; sending the same document twice stores the
  same job (the second answer may say ``unchanged`` where the first would have said
  ``created``);
- ``pause`` and ``resume``: they set a state, and setting it twice is setting it once;
- ``delete_job``: deleting twice leaves the job deleted; a replay answered
  ``NOT_FOUND`` after an ambiguous try is taken as the deletion having happened
  (the job is gone either way), and returns ``[name]``;
- ``cancel_execution``: cancelling twice cancels once; a replay answered
  ``FAILED_PRECONDITION`` (ended already) after an ambiguous try returns the
  execution as it is.

Not retried after it was sent: ``run`` (RunJob). ``RunJobRequest`` holds only the
job's name; the leader stamps a manual run with its own clock and gives it a new
execution id, so a second identical request starts a second run, and nothing in the
request lets the group recognise a replay. ``run`` therefore asks the group where
the leader is (a read, freely retried), checks that the leader's address can be
connected to, and sends the request there once. A failure before sending (no
leader yet, the leader not reachable) is retried; a failure after sending that is
not a definite refusal raises :class:`~kairos_sdk.errors.RunOutcomeUnknown`, which
lists the job's manual runs created since the request was sent so the caller can
see whether it ran. A run is never doubled silently.

Streams: :meth:`Client.watch_executions` resumes on another scheduler after its
stream breaks (see :class:`ExecutionWatch` for what the API allows it to promise);
:meth:`Client.tail_output` fails over only until its first chunk.

Security: with ``ca_file`` (and optionally ``cert_file``/``key_file`` for mTLS)
every channel is TLS; with ``token`` every call, streams included, carries
``authorization: Bearer <token>``.

Deliberately absent: the token and membership services (``TokenService``,
``AddScheduler``...; their stubs are in :mod:`kairos_sdk.pb`), asynchronous calls,
and any cache of answers.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

import grpc

from . import errors
from ._pb import cluster_pb2, cluster_pb2_grpc
from ._pb import execution_pb2, execution_pb2_grpc
from ._pb import job_pb2, job_pb2_grpc
from .documents import Source, parse_jobs, read_source
from .errors import KairosError

T = TypeVar("T")

#: The port assumed when an endpoint names only a host (the CLI's default).
DEFAULT_PORT = 7070
#: Trailing metadata of an ``UNAVAILABLE`` answer naming the leader's address.
LEADER_METADATA_KEY = "kairos-leader"
#: Execution statuses that are not final; any other word is taken as final, since
#: the API adds outcomes, never transient states.
TRANSIENT_STATUSES = frozenset({"pending", "running"})
#: Final statuses the job's retry policy acts on.
RETRYABLE_STATUSES = frozenset({"failed", "timed_out", "lost"})

#: First pause after a round over every endpoint failed; doubled up to the maximum.
_FIRST_PAUSE = 0.1
_MAX_PAUSE = 1.0
#: Codes that are the group's definite answer to a call (never retried).
_DEFINITE = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
#: Codes a broken stream ends with (the scheduler died, restarted, or dropped a
#: watcher that fell behind).
_STREAM_BROKEN = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)
#: How far before the RunJob request a manual run may have been stamped by the
#: leader's clock and still be listed as a candidate (clock skew).
_CLOCK_SLACK_SECONDS = 5.0
#: Executions remembered by a watch to tell a repeat from a change.
_WATCH_MEMORY = 10_000


def normalize_endpoint(endpoint: str) -> Tuple[str, Optional[bool]]:
    """``(host:port, tls)`` of ``endpoint``: ``https://`` means TLS, ``http://``
    plain text, no scheme leaves it to the client's options (``None``). A missing
    port is :data:`DEFAULT_PORT`."""
    text = endpoint.strip()
    tls: Optional[bool] = None
    for scheme, secure in (("https://", True), ("http://", False)):
        if text.startswith(scheme):
            text, tls = text[len(scheme) :], secure
    text = text.rstrip("/")
    if not text or "/" in text:
        raise ValueError(f"endpoints: {endpoint!r} is not host:port")
    if text.startswith("["):  # [v6] or [v6]:port
        _, _, rest = text.partition("]")
        port = rest[1:] if rest.startswith(":") else None
        if rest == "":
            text = f"{text}:{DEFAULT_PORT}"
        elif port is None or not port.isdigit():
            raise ValueError(f"endpoints: {endpoint!r} is not [address]:port")
    elif text.count(":") == 0:
        text = f"{text}:{DEFAULT_PORT}"
    elif text.count(":") == 1:
        if not text.rpartition(":")[2].isdigit():
            raise ValueError(f"endpoints: {endpoint!r} has a port that is not a number")
    else:  # a bare IPv6 address
        text = f"[{text}]:{DEFAULT_PORT}"
    return text, tls


def is_final(status: str) -> bool:
    """True for an execution status that will not change any more."""
    return status not in TRANSIENT_STATUSES


class Client:
    """A client of one Kairos scheduler group.

    Args:
        endpoints: every scheduler's gRPC address (``host:port``,
            ``https://host:port`` or ``http://host:port``); any one that answers
            will do, and the list is the fallback when the one in use dies.
        ca_file: PEM file of the CA that signed the schedulers' certificates; makes
            every channel TLS.
        cert_file, key_file: a client certificate and its key, for mTLS (both or
            neither).
        token: a bearer token (``kairos_<id>_<secret>``), sent as
            ``authorization: Bearer <token>`` on every call.
        timeout: seconds one method may take in all, tries and pauses included.
        max_attempts: tries one method may make.
        attempt_timeout: seconds one try may take before the next endpoint is
            asked (capped by what is left of ``timeout``).
        connect_timeout: seconds to wait for a connection before a scheduler is
            taken as down (used before sending a RunJob and opening streams).
        server_name: the name to check the schedulers' certificates against, when
            it is not the host in the endpoint.

    The client is safe to share between threads. Use it as a context manager, or
    call :meth:`close`, to release its channels.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        ca_file: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 30.0,
        max_attempts: int = 10,
        attempt_timeout: float = 10.0,
        connect_timeout: float = 3.0,
        server_name: Optional[str] = None,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e.strip()]
        if not endpoints:
            raise ValueError("endpoints: at least one scheduler address is needed")
        if (cert_file is None) != (key_file is None):
            raise ValueError("cert_file and key_file: give both (mTLS) or neither")
        for name, value in (
            ("timeout", timeout),
            ("attempt_timeout", attempt_timeout),
            ("connect_timeout", connect_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name}: must be a positive number of seconds, got {value!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts: must be at least 1, got {max_attempts!r}")
        if token is not None and (not token.strip() or "\n" in token):
            raise ValueError("token: must be a non-empty single line")

        use_tls = ca_file is not None or cert_file is not None
        self._addresses: List[str] = []
        self._tls: Dict[str, bool] = {}
        for endpoint in endpoints:
            address, tls = normalize_endpoint(endpoint)
            if tls is False and use_tls:
                raise ValueError(
                    f"endpoints: {endpoint!r} asks for plain text but ca_file/cert_file ask for TLS"
                )
            if address not in self._tls:
                self._addresses.append(address)
            self._tls[address] = use_tls if tls is None else tls
        # An address learned from a `kairos-leader` answer speaks as the given ones.
        self._default_tls = any(self._tls.values())
        self._credentials = None
        if any(self._tls.values()):
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=_read("ca_file", ca_file),
                private_key=_read("key_file", key_file),
                certificate_chain=_read("cert_file", cert_file),
            )
        self._metadata: Tuple[Tuple[str, str], ...] = (
            (("authorization", f"Bearer {token.strip()}"),) if token else ()
        )
        self._options = [
            # Come back quickly to a scheduler that restarted.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
            # Notice a dead scheduler under a quiet stream.
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ]
        if server_name:
            self._options.append(("grpc.ssl_target_name_override", server_name))
        self.timeout = float(timeout)
        self.max_attempts = int(max_attempts)
        self.attempt_timeout = float(attempt_timeout)
        self.connect_timeout = float(connect_timeout)
        self._lock = threading.Lock()
        self._channels: Dict[str, grpc.Channel] = {}
        self._preferred: Optional[str] = None

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Closes every channel; the client is not usable afterwards."""
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoints(self) -> List[str]:
        """Every scheduler address the client knows: the given ones, then those it
        learned from ``kairos-leader`` answers."""
        with self._lock:
            return list(self._addresses)

    @property
    def current_endpoint(self) -> Optional[str]:
        """The scheduler that answered last (the one the next call starts at)."""
        with self._lock:
            return self._preferred

    # ---------------------------------------------------------------------- jobs

    def apply(self, yaml_or_path: Source) -> List[job_pb2.PutJobResponse]:
        """Creates or replaces (upserts) every job of a job document.

        ``yaml_or_path`` is YAML or JSON text, or the path of a file holding it: one
        job, several YAML documents, a list, or ``{"jobs": [...]}`` (see
        :mod:`kairos_sdk.documents`). The whole source is read and checked before the
        first job is sent; jobs are then put one by one, in source order, and the
        answers (the stored job and ``created``/``updated``/``unchanged``) returned
        in that order. A refusal stops there, naming the job and its document; the
        jobs before it stay applied.

        Retried after an ambiguous failure: PutJob is an upsert by name.

        Raises:
            JobDocumentError: the source cannot be read.
            InvalidArgument: the server refused a job (``field`` names why).
        """
        source, text = read_source(yaml_or_path)
        answers = []
        for origin, job in parse_jobs(source, text):
            try:
                answers.append(
                    self._unary(
                        _jobs,
                        "PutJob",
                        job_pb2.PutJobRequest(job=job),
                    )
                )
            except KairosError as e:
                e.message = f"job/{job.name} ({source}: {origin}) was refused: {e.message}"
                e.args = (e.message,)
                raise
        return answers

    def get_job(self, name: str) -> job_pb2.Job:
        """The stored job with its status (next fire, last outcome, counts)."""
        return self._unary(_jobs, "GetJob", job_pb2.GetJobRequest(name=name))

    def list_jobs(self, filter: str = "", *, page_size: int = 100) -> Iterator[job_pb2.Job]:
        """Every job in name order, optionally only those whose metadata matches
        ``filter`` (a selector: ``team=billing,tier in (1,2)``). Pages are fetched
        as the iteration needs them, each with the leader-following rule."""
        token = ""
        while True:
            page = self._unary(
                _jobs,
                "ListJobs",
                job_pb2.ListJobsRequest(page_size=page_size, page_token=token, filter=filter),
            )
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def delete_job(self, name: str, *, cascade: bool = False) -> List[str]:
        """Deletes a job (with its history); with ``cascade`` also the jobs that
        depend on it. Returns every job deleted, the named one first.

        Retried after an ambiguous failure; a replay answered ``NOT_FOUND`` then
        returns ``[name]`` (the first try deleted it, or someone else did).
        """
        answer = self._unary(
            _jobs,
            "DeleteJob",
            job_pb2.DeleteJobRequest(name=name, cascade=cascade),
            done_on_replay=grpc.StatusCode.NOT_FOUND,
        )
        if answer is None:
            return [name]
        return list(answer.deleted)

    def pause(self, name: str, reason: str = "") -> job_pb2.Job:
        """Stops the job firing until :meth:`resume`; ``reason`` is shown in its
        status. Retried after an ambiguous failure (pausing twice is pausing)."""
        return self._unary(_jobs, "PauseJob", job_pb2.PauseJobRequest(name=name, reason=reason))

    def resume(self, name: str) -> job_pb2.Job:
        """Lets a paused job fire again. Retried after an ambiguous failure."""
        return self._unary(_jobs, "ResumeJob", job_pb2.ResumeJobRequest(name=name))

    # ---------------------------------------------------------------------- runs

    def run(self, name: str) -> Optional[job_pb2.Execution]:
        """Starts one execution of the job now (trigger ``manual``) and returns it
        (status ``pending`` or ``running``), or ``None`` when the job runs already
        and its concurrency is ``queue`` (the start waits for it).

        Sent once, to the leader, and never again after it was sent (see the
        module documentation): failures before sending (no leader yet, the leader
        unreachable) are retried within the client's attempts and time.

        Raises:
            RunOutcomeUnknown: the request was sent and no definite answer came
                back; the run may have started (see its ``candidates``).
            FailedPrecondition: the job runs already and its concurrency is
                ``forbid``.
            NotFound: no such job.
        """
        deadline = time.monotonic() + self.timeout
        attempts: List[str] = []
        request = job_pb2.RunJobRequest(name=name)
        leader = self._connectable_leader(deadline, attempts)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise errors.Unavailable(
                f"run of job/{name}: no time left to send it (nothing was sent)",
                attempts=attempts,
                code=grpc.StatusCode.UNAVAILABLE,
            )
        sent_at = time.time()
        try:
            answer = self._stub(leader, _jobs).RunJob(
                request,
                timeout=min(remaining, self.attempt_timeout),
                metadata=self._metadata,
            )
        except grpc.RpcError as e:
            if e.code() in _DEFINITE:
                raise errors.from_rpc_error(e, leader) from None
            candidates = self._manual_runs_since(name, sent_at)
            found = (
                "none found afterwards"
                if candidates == []
                else "could not list them afterwards"
                if candidates is None
                else "found afterwards: " + ", ".join(c.id for c in candidates)
            )
            raise errors.RunOutcomeUnknown(
                f"run of job/{name} was sent to {leader} and got no definite answer "
                f"({e.code().name}: {e.details()}); it may or may not have started, and "
                f"it was not sent again (manual runs since it was sent: {found})",
                job=name,
                candidates=candidates,
                code=e.code(),
                endpoint=leader,
            ) from None
        self._prefer(leader)
        if answer.queued or not answer.HasField("execution"):
            return None
        return answer.execution

    def run_and_wait(
        self, name: str, timeout: float = 300.0, *, poll_interval: float = 0.2
    ) -> job_pb2.Execution:
        """Runs the job (:meth:`run`) and waits for the execution to end; returns
        the finished execution (``status`` is final: succeeded, failed...).

        A failed, timed-out or lost attempt that has retries left under the job's
        policy is followed to its next attempt, so the answer is the run's final
        outcome. Raises :class:`~kairos_sdk.errors.WaitTimeout` when it has not
        ended within ``timeout`` seconds (the run goes on), and
        :class:`~kairos_sdk.errors.RunQueued` when the start was queued.
        """
        execution = self.run(name)
        if execution is None:
            raise errors.RunQueued(
                f"job/{name} is running and its concurrency is queue: the run waits for it"
            )
        return self.wait(execution, timeout, poll_interval=poll_interval)

    def wait(
        self,
        execution: job_pb2.Execution,
        timeout: float = 300.0,
        *,
        poll_interval: float = 0.2,
    ) -> job_pb2.Execution:
        """Polls ``execution`` until it ends, following its retries (see
        :meth:`run_and_wait`), for at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        max_attempts: Optional[int] = None
        current = execution
        while True:
            if is_final(current.status):
                if current.status not in RETRYABLE_STATUSES:
                    return current
                if max_attempts is None:
                    job = self.get_job(current.job)
                    max_attempts = max(job.retry.max_attempts, 1)
                if current.attempt >= max_attempts:
                    return current
                following = None
                while following is None:
                    self._wait_tick(deadline, poll_interval, current, timeout)
                    following = self._next_attempt(current, deadline)
                current = following
                continue
            self._wait_tick(deadline, poll_interval, current, timeout)
            current = self._unary(
                _executions,
                "GetExecution",
                execution_pb2.GetExecutionRequest(id=current.id),
                budget=deadline - time.monotonic(),
            )

    def get_execution(self, execution_id: str) -> job_pb2.Execution:
        """One execution, with its stored output."""
        return self._unary(
            _executions, "GetExecution", execution_pb2.GetExecutionRequest(id=execution_id)
        )

    def list_executions(
        self, job: Optional[str] = None, *, limit: Optional[int] = None, page_size: int = 100
    ) -> Iterator[job_pb2.Execution]:
        """Executions newest first, of one job or of all, at most ``limit`` of them
        (all when ``None``). Pages are fetched as the iteration needs them."""
        token, count = "", 0
        while True:
            size = page_size if limit is None else max(min(page_size, limit - count), 1)
            page = self._unary(
                _executions,
                "ListExecutions",
                execution_pb2.ListExecutionsRequest(
                    job=job or "", page_size=size, page_token=token
                ),
            )
            for execution in page.executions:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield execution
            token = page.next_page_token
            if not token or (limit is not None and count >= limit):
                return

    def cancel_execution(self, execution_id: str) -> job_pb2.Execution:
        """Asks for a pending or running execution to be killed; it ends
        ``cancelled`` (asynchronously: the answer may still say ``running``).

        Retried after an ambiguous failure; a replay answered
        ``FAILED_PRECONDITION`` (it has ended) then returns the execution as it is
        now, since the first try may have been what ended it.
        """
        answer = self._unary(
            _executions,
            "CancelExecution",
            execution_pb2.CancelExecutionRequest(id=execution_id),
            done_on_replay=grpc.StatusCode.FAILED_PRECONDITION,
        )
        return self.get_execution(execution_id) if answer is None else answer

    def watch_executions(
        self, job: Optional[str] = None, *, resume: bool = True, catch_up: int = 1000
    ) -> "ExecutionWatch":
        """A stream of executions as they are created and change, of one job or of
        all; see :class:`ExecutionWatch`. The stream is open when this returns:
        every change from then on is delivered."""
        return ExecutionWatch(self, job or "", resume=resume, catch_up=catch_up)

    def tail_output(self, execution_id: str, *, follow: bool = True) -> Iterator[str]:
        """The output of an execution as it is written: the stored output at once
        for one that ended; for a running one, what it printed so far and then,
        with ``follow``, each new piece until it ends.

        The request names no offset, so a stream that breaks after its first chunk
        cannot be resumed without repeating or losing output: then
        :class:`~kairos_sdk.errors.Unavailable` is raised. Until the first chunk,
        endpoints are tried with the leader-following rule.
        """
        request = execution_pb2.TailOutputRequest(id=execution_id, follow=follow)
        started = False

        def open_stream(addr: str, remaining: float):
            return self._stub(addr, _executions).TailOutput(request, metadata=self._metadata)

        stream, address = self._open_stream(open_stream)
        try:
            for chunk in stream:
                started = True
                yield chunk.data
        except grpc.RpcError as e:
            if e.code() in _DEFINITE or not started:
                raise errors.from_rpc_error(e, address) from None
            raise errors.Unavailable(
                f"the output stream of execution {execution_id} from {address} broke "
                f"({e.code().name}: {e.details()}); it cannot be resumed without repeating output",
                code=e.code(),
                endpoint=address,
            ) from None
        finally:
            stream.cancel()

    # ------------------------------------------------------------------- cluster

    def cluster_status(self) -> cluster_pb2.ClusterStatus:
        """The group as the answering scheduler sees it: the leader, every
        scheduler's role, term and indexes, and the executors."""
        return self._unary(_cluster, "GetStatus", cluster_pb2.GetStatusRequest())

    def executors(self) -> List[cluster_pb2.ExecutorStatus]:
        """The executors connected to the leader."""
        return list(
            self._unary(_cluster, "ListExecutors", cluster_pb2.ListExecutorsRequest()).executors
        )

    # ------------------------------------------------------------------ plumbing

    def _channel(self, address: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                if self._tls.get(address, self._default_tls):
                    channel = grpc.secure_channel(address, self._credentials, self._options)
                else:
                    channel = grpc.insecure_channel(address, self._options)
                self._channels[address] = channel
            return channel

    def _stub(self, address: str, service: Callable[[grpc.Channel], T]) -> T:
        return service(self._channel(address))

    def _learn(self, address: str) -> str:
        """Adds an address named by a ``kairos-leader`` answer to the known ones."""
        normalized, tls = normalize_endpoint(address)
        with self._lock:
            if normalized not in self._tls:
                self._addresses.append(normalized)
                self._tls[normalized] = self._default_tls if tls is None else tls
        return normalized

    def _prefer(self, address: Optional[str]) -> None:
        with self._lock:
            self._preferred = address

    def _order(self) -> List[str]:
        """Endpoints to try, the one that answered last first."""
        with self._lock:
            first = [self._preferred] if self._preferred else []
            return first + [a for a in self._addresses if a != self._preferred]

    def _unary(
        self,
        service: Callable[[grpc.Channel], object],
        method: str,
        request,
        *,
        done_on_replay: Optional[grpc.StatusCode] = None,
        budget: Optional[float] = None,
    ):
        """One unary call of a method that may be sent again (see the module
        documentation), with the leader-following rule. ``done_on_replay`` is the
        code a replay gets when the first try had done the work: after an ambiguous
        try it returns ``None`` instead of raising."""
        budget = self.timeout if budget is None else max(min(budget, self.timeout), 0.001)
        deadline = time.monotonic() + budget
        attempts: List[str] = []
        ambiguous = False
        hint: Optional[str] = None
        pause = _FIRST_PAUSE
        queue: List[str] = []
        while len(attempts) < self.max_attempts:
            if hint is not None:
                address, hint = hint, None
            else:
                if not queue:
                    if attempts:
                        # A round over every endpoint failed: let an election end.
                        time.sleep(max(min(pause, deadline - time.monotonic()), 0))
                        pause = min(pause * 2, _MAX_PAUSE)
                    queue = self._order()
                address = queue.pop(0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                answer = getattr(self._stub(address, service), method)(
                    request,
                    timeout=min(remaining, self.attempt_timeout),
                    metadata=self._metadata,
                )
            except grpc.RpcError as e:
                code = e.code()
                if code == done_on_replay and ambiguous:
                    self._prefer(address)
                    return None
                if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise errors.from_rpc_error(e, address) from None
                ambiguous = True
                leader = errors.trailing(e, LEADER_METADATA_KEY)
                attempts.append(
                    f"{address}: {code.name}: {e.details()}"
                    + (f" (leader: {leader})" if leader else "")
                )
                if leader:
                    learned = self._learn(leader)
                    if learned != address:
                        hint = learned
                        if learned in queue:
                            queue.remove(learned)
                with self._lock:
                    if self._preferred == address:
                        self._preferred = None
                continue
            self._prefer(address)
            return answer
        raise errors.Unavailable(
            f"{method}: no scheduler could serve it in {len(attempts)} tries "
            f"within {budget:.1f}s",
            attempts=attempts,
            code=grpc.StatusCode.UNAVAILABLE,
        )

    def _connectable_leader(self, deadline: float, attempts: List[str]) -> str:
        """The address of the leader as the group names it, once a connection to
        it is up; retried (it is only reads and connects) within the deadline."""
        pause = _FIRST_PAUSE
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(attempts) >= self.max_attempts:
                raise errors.Unavailable(
                    "no reachable leader to send the run to (nothing was sent)",
                    attempts=attempts,
                    code=grpc.StatusCode.UNAVAILABLE,
                )
            try:
                status = self._unary(
                    _cluster, "GetStatus", cluster_pb2.GetStatusRequest(), budget=remaining
                )
            except errors.Unavailable as e:
                attempts.extend(e.attempts or [str(e)])
                continue
            if status.leader_id == 0 or not status.leader_addr:
                attempts.append(f"{self.current_endpoint}: no leader yet")
            else:
                leader = self._learn(status.leader_addr)
                wait = max(min(self.connect_timeout, deadline - time.monotonic()), 0.001)
                if _ready(self._channel(leader), wait):
                    return leader
                attempts.append(f"{leader}: the leader named by the group cannot be reached")
                with self._lock:
                    if self._preferred == leader:
                        self._preferred = None
            time.sleep(max(min(pause, deadline - time.monotonic()), 0))
            pause = min(pause * 2, _MAX_PAUSE)

    def _manual_runs_since(self, name: str, sent_at: float) -> Optional[List[job_pb2.Execution]]:
        """The job's manual executions created since ``sent_at`` (wall clock, less
        the clock slack), newest first; ``None`` if they cannot be listed."""
        try:
            found = []
            for execution in self.list_executions(name, limit=100):
                created = execution.created_at.seconds + execution.created_at.nanos / 1e9
                if created < sent_at - _CLOCK_SLACK_SECONDS:
                    break
                if execution.trigger == "manual":
                    found.append(execution)
            return found
        except KairosError:
            return None

    def _next_attempt(
        self, execution: job_pb2.Execution, deadline: float
    ) -> Optional[job_pb2.Execution]:
        page = self._unary(
            _executions,
            "ListExecutions",
            execution_pb2.ListExecutionsRequest(job=execution.job, page_size=100),
            budget=deadline - time.monotonic(),
        )
        for candidate in page.executions:
            if (
                candidate.scheduled_at == execution.scheduled_at
                and candidate.attempt == execution.attempt + 1
            ):
                return candidate
        return None

    @staticmethod
    def _wait_tick(
        deadline: float, poll_interval: float, current: job_pb2.Execution, timeout: float
    ) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise errors.WaitTimeout(
                f"execution {current.id} of job/{current.job} is still "
                f"{current.status or 'unknown'} after {timeout:g}s; it goes on",
                execution=current,
            )
        time.sleep(min(poll_interval, remaining))

    def _open_stream(self, open_call, *, avoid: Optional[str] = None):
        """Opens a server stream with the leader-following rule: ``open_call(addr,
        remaining)`` starts it; it counts as open once the server has sent its
        headers. ``avoid`` (where a stream just broke) is tried last. Returns
        ``(call, address)``."""
        deadline = time.monotonic() + self.timeout
        attempts: List[str] = []
        pause = _FIRST_PAUSE
        queue: List[str] = []
        hint: Optional[str] = None
        while len(attempts) < self.max_attempts:
            if hint is not None:
                address, hint = hint, None
            else:
                if not queue:
                    if attempts:
                        time.sleep(max(min(pause, deadline - time.monotonic()), 0))
                        pause = min(pause * 2, _MAX_PAUSE)
                    queue = self._order()
                    if avoid in queue:
                        queue.remove(avoid)
                        queue.append(avoid)
                address = queue.pop(0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = max(min(self.connect_timeout, remaining), 0.001)
            if not _ready(self._channel(address), wait):
                attempts.append(f"{address}: cannot be reached")
                continue
            call = open_call(address, remaining)
            failure = _await_headers(call, min(remaining, self.attempt_timeout))
            if failure is None:
                self._prefer(address)
                return call, address
            code, details, leader = failure
            if code in _DEFINITE:
                raise errors.from_status(code, details, address)
            attempts.append(f"{address}: {code.name}: {details}")
            if leader:
                learned = self._learn(leader)
                if learned != address:
                    hint = learned
        raise errors.Unavailable(
            f"no scheduler could open the stream in {len(attempts)} tries within {self.timeout:.1f}s",
            attempts=attempts,
            code=grpc.StatusCode.UNAVAILABLE,
        )


def _ready(channel: grpc.Channel, timeout: float) -> bool:
    """True once ``channel`` is connected, False if it is not within ``timeout``."""
    future = grpc.channel_ready_future(channel)
    try:
        future.result(timeout=timeout)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        # Stops its watch of the channel's state (it would outlive a closed channel).
        future.cancel()


def _await_headers(call, timeout: float) -> Optional[Tuple[grpc.StatusCode, str, Optional[str]]]:
    """Waits (at most ``timeout`` seconds) until the server has answered the
    stream's opening; ``None`` when it is open, else ``(code, details, leader)``."""
    done = threading.Event()

    def wait_headers() -> None:
        try:
            call.initial_metadata()
        finally:
            done.set()

    threading.Thread(target=wait_headers, daemon=True).start()
    if not done.wait(timeout):
        call.cancel()
        return grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within {timeout:.1f}s", None
    if call.done() and call.code() != grpc.StatusCode.OK:
        leader = None
        for k, v in call.trailing_metadata() or ():
            if k == LEADER_METADATA_KEY:
                leader = v
        return call.code(), call.details() or "", leader
    return None


class ExecutionWatch(Iterator[job_pb2.Execution]):
    """An iterator of execution changes (each a whole ``Execution``), opened by
    :meth:`Client.watch_executions`. Close it (or use it as a context manager) to
    end the stream; iteration then stops.

    What a broken stream costs: ``WatchExecutionsRequest`` names only the job — no
    position to resume from — so after a scheduler dies no stream can start where
    the old one stopped, and an exact resume is impossible. With ``resume`` (the
    default) the watch does the nearest honest thing: it opens a new stream on
    another scheduler (the leader-following rule), then lists the newest
    ``catch_up`` executions and delivers, oldest first, each one whose state
    differs from the last one delivered (or, for one never delivered, from the
    state it had when the watch began; executions created since then all count).
    So no final state is lost, but intermediate states during the gap arrive
    coalesced into the current one (a run that went pending → running →
    succeeded while no stream was open arrives once, ``succeeded``); nothing
    already delivered is delivered again, since a change identical to the last
    delivered state of that execution is dropped. More than ``catch_up`` changed
    executions during one gap loses the oldest. A watcher that falls behind the
    server (``ABORTED``) is resumed the same way. With ``resume=False`` a broken
    stream raises :class:`~kairos_sdk.errors.Unavailable`.
    """

    def __init__(self, client: Client, job: str, *, resume: bool, catch_up: int) -> None:
        if catch_up < 1:
            raise ValueError(f"catch_up: must be at least 1, got {catch_up!r}")
        self._client = client
        self._job = job
        self._resume = resume
        self._catch_up = min(catch_up, 1000)
        self._closed = False
        self._pending: collections.deque = collections.deque()
        self._delivered: "collections.OrderedDict[str, bytes]" = collections.OrderedDict()
        self._baseline: Dict[str, bytes] = {}
        self._baseline_max: Optional[Tuple[int, str]] = None
        #: How many times the stream was reopened after breaking.
        self.resumes = 0
        self._call, self.endpoint = self._open()
        if resume:
            for execution in self._listing():
                self._baseline[execution.id] = _fingerprint(execution)
                key = _id_key(execution.id)
                if self._baseline_max is None or key > self._baseline_max:
                    self._baseline_max = key

    def close(self) -> None:
        """Ends the stream; iteration stops."""
        self._closed = True
        self._call.cancel()

    def __enter__(self) -> "ExecutionWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> "ExecutionWatch":
        return self

    def __next__(self) -> job_pb2.Execution:
        while True:
            if self._closed:
                raise StopIteration
            if self._pending:
                execution = self._pending.popleft()
            else:
                try:
                    execution = next(self._call)
                except StopIteration:
                    reason = "the stream ended"
                    self._reopen(reason)
                    continue
                except grpc.RpcError as e:
                    if self._closed:
                        raise StopIteration from None
                    if e.code() not in _STREAM_BROKEN:
                        raise errors.from_rpc_error(e, self.endpoint) from None
                    self._reopen(f"{e.code().name}: {e.details()}")
                    continue
            fingerprint = _fingerprint(execution)
            if self._delivered.get(execution.id) == fingerprint:
                continue
            self._delivered[execution.id] = fingerprint
            self._delivered.move_to_end(execution.id)
            while len(self._delivered) > _WATCH_MEMORY:
                self._delivered.popitem(last=False)
            return execution

    def _open(self, avoid: Optional[str] = None):
        request = execution_pb2.WatchExecutionsRequest(job=self._job)
        client = self._client

        def open_call(address: str, remaining: float):
            return client._stub(address, _executions).WatchExecutions(
                request, metadata=client._metadata
            )

        return client._open_stream(open_call, avoid=avoid)

    def _listing(self) -> List[job_pb2.Execution]:
        return list(self._client.list_executions(self._job or None, limit=self._catch_up,
                                                 page_size=self._catch_up))

    def _reopen(self, reason: str) -> None:
        if not self._resume:
            raise errors.Unavailable(
                f"the watch stream from {self.endpoint} broke ({reason})",
                code=grpc.StatusCode.UNAVAILABLE,
                endpoint=self.endpoint,
            )
        self._call.cancel()
        self._call, self.endpoint = self._open(avoid=self.endpoint)
        self.resumes += 1
        changed = []
        for execution in self._listing():
            fingerprint = _fingerprint(execution)
            known = self._delivered.get(execution.id, self._baseline.get(execution.id))
            if known is not None:
                if known != fingerprint:
                    changed.append(execution)
            elif self._baseline_max is None or _id_key(execution.id) > self._baseline_max:
                changed.append(execution)
        changed.sort(key=lambda e: _id_key(e.id))
        self._pending.extend(changed)


def _fingerprint(execution: job_pb2.Execution) -> bytes:
    return execution.SerializeToString(deterministic=True)


def _id_key(execution_id: str) -> Tuple[int, str]:
    """Execution ids are increasing numbers; order them as such."""
    return (int(execution_id), "") if execution_id.isdigit() else (-1, execution_id)


def _read(what: str, path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    try:
        with open(os.fspath(path), "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{what}: cannot read {path}: {e.strerror or e}") from e


def _jobs(channel: grpc.Channel) -> job_pb2_grpc.JobServiceStub:
    return job_pb2_grpc.JobServiceStub(channel)


def _executions(channel: grpc.Channel) -> execution_pb2_grpc.ExecutionServiceStub:
    return execution_pb2_grpc.ExecutionServiceStub(channel)


def _cluster(channel: grpc.Channel) -> cluster_pb2_grpc.ClusterServiceStub:
    return cluster_pb2_grpc.ClusterServiceStub(channel)
