from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_REASON_UNSPECIFIED: _ClassVar[FailureReason]
    FAILURE_REASON_TIMEOUT: _ClassVar[FailureReason]
    FAILURE_REASON_MEMORY: _ClassVar[FailureReason]
    FAILURE_REASON_SANDBOX_VIOLATION: _ClassVar[FailureReason]
    FAILURE_REASON_OUTPUT_TOO_LARGE: _ClassVar[FailureReason]
    FAILURE_REASON_BAD_INPUT: _ClassVar[FailureReason]
    FAILURE_REASON_INTERNAL: _ClassVar[FailureReason]
    FAILURE_REASON_CANCELLED: _ClassVar[FailureReason]
    FAILURE_REASON_REFUSED: _ClassVar[FailureReason]

class CancelOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_OUTCOME_UNSPECIFIED: _ClassVar[CancelOutcome]
    CANCEL_OUTCOME_STOPPED: _ClassVar[CancelOutcome]
    CANCEL_OUTCOME_NOT_STARTED: _ClassVar[CancelOutcome]
    CANCEL_OUTCOME_ALREADY_FINISHED: _ClassVar[CancelOutcome]
FAILURE_REASON_UNSPECIFIED: FailureReason
FAILURE_REASON_TIMEOUT: FailureReason
FAILURE_REASON_MEMORY: FailureReason
FAILURE_REASON_SANDBOX_VIOLATION: FailureReason
FAILURE_REASON_OUTPUT_TOO_LARGE: FailureReason
FAILURE_REASON_BAD_INPUT: FailureReason
FAILURE_REASON_INTERNAL: FailureReason
FAILURE_REASON_CANCELLED: FailureReason
FAILURE_REASON_REFUSED: FailureReason
CANCEL_OUTCOME_UNSPECIFIED: CancelOutcome
CANCEL_OUTCOME_STOPPED: CancelOutcome
CANCEL_OUTCOME_NOT_STARTED: CancelOutcome
CANCEL_OUTCOME_ALREADY_FINISHED: CancelOutcome

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AssetInfo(_message.Message):
    __slots__ = ("id", "kind", "format", "ready")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    format: str
    ready: bool
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., format: _Optional[str] = ..., ready: _Optional[bool] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("agent_version", "isolation_level", "isolation_backend", "layers", "assets", "executors")
    class LayersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bool
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bool] = ...) -> None: ...
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_BACKEND_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    isolation_level: str
    isolation_backend: str
    layers: _containers.ScalarMap[str, bool]
    assets: _containers.RepeatedCompositeFieldContainer[AssetInfo]
    executors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_version: _Optional[str] = ..., isolation_level: _Optional[str] = ..., isolation_backend: _Optional[str] = ..., layers: _Optional[_Mapping[str, bool]] = ..., assets: _Optional[_Iterable[_Union[AssetInfo, _Mapping]]] = ..., executors: _Optional[_Iterable[str]] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("memory_bytes", "cpu_seconds", "wall_seconds", "output_bytes", "threads")
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    memory_bytes: int
    cpu_seconds: int
    wall_seconds: float
    output_bytes: int
    threads: int
    def __init__(self, memory_bytes: _Optional[int] = ..., cpu_seconds: _Optional[int] = ..., wall_seconds: _Optional[float] = ..., output_bytes: _Optional[int] = ..., threads: _Optional[int] = ...) -> None: ...

class RunFragmentRequest(_message.Message):
    __slots__ = ("fragment_id", "limits", "deadline_ms", "input_sha256", "ticket")
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHA256_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    fragment_id: str
    limits: Limits
    deadline_ms: int
    input_sha256: str
    ticket: bytes
    def __init__(self, fragment_id: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., deadline_ms: _Optional[int] = ..., input_sha256: _Optional[str] = ..., ticket: _Optional[bytes] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("null_value", "bool_value", "int_value", "double_value", "string_value", "big_int_value")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BIG_INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    null_value: bool
    bool_value: bool
    int_value: int
    double_value: float
    string_value: str
    big_int_value: str
    def __init__(self, null_value: _Optional[bool] = ..., bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., string_value: _Optional[str] = ..., big_int_value: _Optional[str] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class RunFragmentResponse(_message.Message):
    __slots__ = ("fragment_id", "ok", "columns", "types", "rows", "failure", "elapsed_ms", "replayed", "release", "reasons")
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    fragment_id: str
    ok: bool
    columns: _containers.RepeatedScalarFieldContainer[str]
    types: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    failure: FailureReason
    elapsed_ms: float
    replayed: bool
    release: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fragment_id: _Optional[str] = ..., ok: _Optional[bool] = ..., columns: _Optional[_Iterable[str]] = ..., types: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ..., failure: _Optional[_Union[FailureReason, str]] = ..., elapsed_ms: _Optional[float] = ..., replayed: _Optional[bool] = ..., release: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class UploadInputRequest(_message.Message):
    __slots__ = ("total_size", "sha256", "chunk")
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    total_size: int
    sha256: str
    chunk: bytes
    def __init__(self, total_size: _Optional[int] = ..., sha256: _Optional[str] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadInputResponse(_message.Message):
    __slots__ = ("sha256", "size", "already_present")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size: int
    already_present: bool
    def __init__(self, sha256: _Optional[str] = ..., size: _Optional[int] = ..., already_present: _Optional[bool] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("fragment_id",)
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    fragment_id: str
    def __init__(self, fragment_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("outcome",)
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: CancelOutcome
    def __init__(self, outcome: _Optional[_Union[CancelOutcome, str]] = ...) -> None: ...

class FetchOutputsRequest(_message.Message):
    __slots__ = ("fragment_id",)
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    fragment_id: str
    def __init__(self, fragment_id: _Optional[str] = ...) -> None: ...

class OutputFile(_message.Message):
    __slots__ = ("kind", "path", "size", "sha256", "content")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    path: str
    size: int
    sha256: str
    content: bytes
    def __init__(self, kind: _Optional[str] = ..., path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class FetchOutputsResponse(_message.Message):
    __slots__ = ("fragment_id", "state", "reason", "reviewer", "review_statement", "review_signature", "outputs_sha256", "detail", "files")
    FRAGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    REVIEW_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    REVIEW_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    fragment_id: str
    state: str
    reason: str
    reviewer: str
    review_statement: str
    review_signature: str
    outputs_sha256: str
    detail: str
    files: _containers.RepeatedCompositeFieldContainer[OutputFile]
    def __init__(self, fragment_id: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., reviewer: _Optional[str] = ..., review_statement: _Optional[str] = ..., review_signature: _Optional[str] = ..., outputs_sha256: _Optional[str] = ..., detail: _Optional[str] = ..., files: _Optional[_Iterable[_Union[OutputFile, _Mapping]]] = ...) -> None: ...

class ProveRequest(_message.Message):
    __slots__ = ("challenge",)
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    challenge: bytes
    def __init__(self, challenge: _Optional[bytes] = ...) -> None: ...

class ProveResponse(_message.Message):
    __slots__ = ("agent_public_key", "endorsement", "signature", "tls_fingerprint")
    AGENT_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    ENDORSEMENT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TLS_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    agent_public_key: str
    endorsement: bytes
    signature: bytes
    tls_fingerprint: str
    def __init__(self, agent_public_key: _Optional[str] = ..., endorsement: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., tls_fingerprint: _Optional[str] = ...) -> None: ...
