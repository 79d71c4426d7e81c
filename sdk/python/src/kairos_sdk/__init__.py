"""Kairos's Python SDK: a typed client of the gRPC API of a Kairos scheduler group.

    from kairos_sdk import Client

    with Client(["10.0.0.1:7070", "10.0.0.2:7070", "10.0.0.3:7070"],
                ca_file="ca.crt", token=token) as kairos:
        kairos.apply("jobs.yaml")
        done = kairos.run_and_wait("nightly-report", timeout=600)
        print(done.status, done.output)

- :class:`Client` (in :mod:`kairos_sdk.client`): every public call, with the
  leader-following rule and the retry rules described there;
- :mod:`kairos_sdk.errors`: what the calls raise;
- :mod:`kairos_sdk.documents`: job documents (YAML/JSON) as ``kairos.v1.Job``;
- :mod:`kairos_sdk.pb`: the generated message classes and service stubs, for
  anything the client does not wrap.
"""

from . import pb
from .client import Client, ExecutionWatch, is_final
from .documents import parse_jobs
from .errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    JobDocumentError,
    KairosError,
    NotFound,
    PermissionDenied,
    RunOutcomeUnknown,
    RunQueued,
    Unauthenticated,
    Unavailable,
    WaitTimeout,
)

#: The message types the client's methods return.
Job = pb.job_pb2.Job
Execution = pb.job_pb2.Execution
ClusterStatus = pb.cluster_pb2.ClusterStatus

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "Client",
    "ClusterStatus",
    "Execution",
    "ExecutionWatch",
    "FailedPrecondition",
    "InvalidArgument",
    "Job",
    "JobDocumentError",
    "KairosError",
    "NotFound",
    "PermissionDenied",
    "RunOutcomeUnknown",
    "RunQueued",
    "Unauthenticated",
    "Unavailable",
    "WaitTimeout",
    "is_final",
    "parse_jobs",
    "pb",
]
