"""The deployment spec: its typed shape (``model``), the closed sets of values (``choices``), the rules between
fields (``rules``), resolving it from its sources (``load``) and its generated field reference (``reference``).

Import the public names from here: ``from tritongen.spec import Spec, load_spec``.
"""

from .choices import (
    BatchingStrategy,
    BatchSchedulerPolicy,
    ComputeDtype,
    CpuDevice,
    CpuEngineKind,
    DecodingMode,
    KvCacheDtype,
    LogitsDataType,
    OutputGroup,
    OutputSet,
    Precision,
    Route,
    SpeculativeMethod,
    TorchDtype,
)
from .load import (
    apply_options,
    apply_sets,
    build_spec,
    deep_merge,
    dump_spec,
    format_validation_error,
    load_spec,
    load_yaml_file,
    parse_set,
)
from .model import (
    MODEL_ROLES,
    Container,
    CpuSpec,
    Decoding,
    EngineSpec,
    KvCacheSpec,
    Limits,
    Lookahead,
    ModelInfo,
    Parallelism,
    PrecisionSpec,
    Scheduling,
    Serving,
    Spec,
    Speculative,
)
from .rules import cross_check

__all__ = [
    "MODEL_ROLES", "BatchSchedulerPolicy", "BatchingStrategy", "ComputeDtype", "Container", "CpuDevice",
    "CpuEngineKind", "CpuSpec", "Decoding", "DecodingMode", "EngineSpec", "KvCacheDtype", "KvCacheSpec", "Limits",
    "LogitsDataType", "Lookahead", "ModelInfo", "OutputGroup", "OutputSet", "Parallelism", "Precision",
    "PrecisionSpec", "Route", "Scheduling", "Serving", "Spec", "Speculative", "SpeculativeMethod", "TorchDtype",
    "apply_options", "apply_sets", "build_spec", "cross_check", "deep_merge", "dump_spec",
    "format_validation_error", "load_spec", "load_yaml_file", "parse_set",
]
