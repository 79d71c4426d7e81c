import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Job(_message.Message):
    __slots__ = ("name", "schedule", "timezone", "shell", "http", "target", "timeout", "retry", "concurrency", "misfire", "parent", "parent_on", "metadata", "paused", "history", "description", "starts_at", "expires_at", "ephemeral", "notify", "version", "created_at", "updated_at", "status")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    SHELL_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PARENT_ON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    schedule: str
    timezone: str
    shell: ShellAction
    http: HttpAction
    target: Target
    timeout: str
    retry: RetryPolicy
    concurrency: str
    misfire: Misfire
    parent: str
    parent_on: str
    metadata: _containers.ScalarMap[str, str]
    paused: bool
    history: History
    description: str
    starts_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    ephemeral: bool
    notify: _containers.RepeatedCompositeFieldContainer[Notify]
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    status: JobStatus
    def __init__(self, name: _Optional[str] = ..., schedule: _Optional[str] = ..., timezone: _Optional[str] = ..., shell: _Optional[_Union[ShellAction, _Mapping]] = ..., http: _Optional[_Union[HttpAction, _Mapping]] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., timeout: _Optional[str] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., concurrency: _Optional[str] = ..., misfire: _Optional[_Union[Misfire, _Mapping]] = ..., parent: _Optional[str] = ..., parent_on: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., paused: _Optional[bool] = ..., history: _Optional[_Union[History, _Mapping]] = ..., description: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ephemeral: _Optional[bool] = ..., notify: _Optional[_Iterable[_Union[Notify, _Mapping]]] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[JobStatus, _Mapping]] = ...) -> None: ...

class Notify(_message.Message):
    __slots__ = ("url", "events", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    url: str
    events: _containers.RepeatedScalarFieldContainer[str]
    headers: _containers.ScalarMap[str, str]
    def __init__(self, url: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ShellAction(_message.Message):
    __slots__ = ("command", "env", "cwd", "secret_env")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SecretEnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SecretEnv
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SecretEnv, _Mapping]] = ...) -> None: ...
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    SECRET_ENV_FIELD_NUMBER: _ClassVar[int]
    command: str
    env: _containers.ScalarMap[str, str]
    cwd: str
    secret_env: _containers.MessageMap[str, SecretEnv]
    def __init__(self, command: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., cwd: _Optional[str] = ..., secret_env: _Optional[_Mapping[str, SecretEnv]] = ...) -> None: ...

class SecretEnv(_message.Message):
    __slots__ = ("value", "file", "env", "stored")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    value: str
    file: str
    env: str
    stored: bool
    def __init__(self, value: _Optional[str] = ..., file: _Optional[str] = ..., env: _Optional[str] = ..., stored: _Optional[bool] = ...) -> None: ...

class HttpAction(_message.Message):
    __slots__ = ("method", "url", "headers", "body", "expected_status", "body_regex", "insecure_skip_verify", "ca_file")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATUS_FIELD_NUMBER: _ClassVar[int]
    BODY_REGEX_FIELD_NUMBER: _ClassVar[int]
    INSECURE_SKIP_VERIFY_FIELD_NUMBER: _ClassVar[int]
    CA_FILE_FIELD_NUMBER: _ClassVar[int]
    method: str
    url: str
    headers: _containers.ScalarMap[str, str]
    body: str
    expected_status: _containers.RepeatedScalarFieldContainer[str]
    body_regex: str
    insecure_skip_verify: bool
    ca_file: str
    def __init__(self, method: _Optional[str] = ..., url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[str] = ..., expected_status: _Optional[_Iterable[str]] = ..., body_regex: _Optional[str] = ..., insecure_skip_verify: _Optional[bool] = ..., ca_file: _Optional[str] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("selector", "count", "strategy", "wait")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    selector: str
    count: int
    strategy: str
    wait: str
    def __init__(self, selector: _Optional[str] = ..., count: _Optional[int] = ..., strategy: _Optional[str] = ..., wait: _Optional[str] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_attempts", "backoff", "max_backoff")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    backoff: str
    max_backoff: str
    def __init__(self, max_attempts: _Optional[int] = ..., backoff: _Optional[str] = ..., max_backoff: _Optional[str] = ...) -> None: ...

class Misfire(_message.Message):
    __slots__ = ("policy", "window")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    policy: str
    window: str
    def __init__(self, policy: _Optional[str] = ..., window: _Optional[str] = ...) -> None: ...

class History(_message.Message):
    __slots__ = ("keep",)
    KEEP_FIELD_NUMBER: _ClassVar[int]
    keep: int
    def __init__(self, keep: _Optional[int] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("next_fire_at", "last_scheduled_at", "last_outcome", "last_finished_at", "outcome_counts", "running", "paused_reason", "queued_at", "pending_retries", "backfills", "last_success_at", "last_failure_at")
    class OutcomeCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NEXT_FIRE_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    LAST_FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_COUNTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PAUSED_REASON_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    PENDING_RETRIES_FIELD_NUMBER: _ClassVar[int]
    BACKFILLS_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_AT_FIELD_NUMBER: _ClassVar[int]
    next_fire_at: _timestamp_pb2.Timestamp
    last_scheduled_at: _timestamp_pb2.Timestamp
    last_outcome: str
    last_finished_at: _timestamp_pb2.Timestamp
    outcome_counts: _containers.ScalarMap[str, int]
    running: int
    paused_reason: str
    queued_at: _timestamp_pb2.Timestamp
    pending_retries: int
    backfills: int
    last_success_at: _timestamp_pb2.Timestamp
    last_failure_at: _timestamp_pb2.Timestamp
    def __init__(self, next_fire_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_outcome: _Optional[str] = ..., last_finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome_counts: _Optional[_Mapping[str, int]] = ..., running: _Optional[int] = ..., paused_reason: _Optional[str] = ..., queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pending_retries: _Optional[int] = ..., backfills: _Optional[int] = ..., last_success_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_failure_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PutJobRequest(_message.Message):
    __slots__ = ("job", "expected_version")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    job: Job
    expected_version: int
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class PutJobResponse(_message.Message):
    __slots__ = ("job", "result")
    JOB_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    job: Job
    result: str
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., result: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("name", "cascade")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CASCADE_FIELD_NUMBER: _ClassVar[int]
    name: str
    cascade: bool
    def __init__(self, name: _Optional[str] = ..., cascade: _Optional[bool] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted: _Optional[_Iterable[str]] = ...) -> None: ...

class BackfillRequest(_message.Message):
    __slots__ = ("name", "to", "dry_run", "parallel", "rate")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    to: _timestamp_pb2.Timestamp
    dry_run: bool
    parallel: int
    rate: float
    def __init__(self, name: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dry_run: _Optional[bool] = ..., parallel: _Optional[int] = ..., rate: _Optional[float] = ..., **kwargs) -> None: ...

class BackfillResponse(_message.Message):
    __slots__ = ("instants", "id")
    INSTANTS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    instants: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    id: str
    def __init__(self, instants: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ..., id: _Optional[str] = ...) -> None: ...

class RunJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RunJobResponse(_message.Message):
    __slots__ = ("execution", "queued")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    queued: bool
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ..., queued: _Optional[bool] = ...) -> None: ...

class PauseJobRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResumeJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PreviewScheduleRequest(_message.Message):
    __slots__ = ("name", "job", "to", "limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    job: Job
    to: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, name: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., **kwargs) -> None: ...

class PreviewScheduleResponse(_message.Message):
    __slots__ = ("instants", "timezone")
    INSTANTS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    instants: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    timezone: str
    def __init__(self, instants: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ..., timezone: _Optional[str] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("id", "job", "scheduled_at", "attempt", "trigger", "executor", "status", "exit_code", "output", "output_truncated", "error", "created_at", "started_at", "finished_at", "term", "late_status", "previous_attempt", "group", "parent_execution", "backfill", "group_status", "executor_boot")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LATE_STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PARENT_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    BACKFILL_FIELD_NUMBER: _ClassVar[int]
    GROUP_STATUS_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_BOOT_FIELD_NUMBER: _ClassVar[int]
    id: str
    job: str
    scheduled_at: _timestamp_pb2.Timestamp
    attempt: int
    trigger: str
    executor: str
    status: str
    exit_code: int
    output: str
    output_truncated: bool
    error: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    term: int
    late_status: str
    previous_attempt: str
    group: str
    parent_execution: str
    backfill: str
    group_status: str
    executor_boot: str
    def __init__(self, id: _Optional[str] = ..., job: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., trigger: _Optional[str] = ..., executor: _Optional[str] = ..., status: _Optional[str] = ..., exit_code: _Optional[int] = ..., output: _Optional[str] = ..., output_truncated: _Optional[bool] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., term: _Optional[int] = ..., late_status: _Optional[str] = ..., previous_attempt: _Optional[str] = ..., group: _Optional[str] = ..., parent_execution: _Optional[str] = ..., backfill: _Optional[str] = ..., group_status: _Optional[str] = ..., executor_boot: _Optional[str] = ...) -> None: ...
