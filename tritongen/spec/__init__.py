"""The deployment spec: its typed shape (``model``), the closed sets of values (``choices``), the rules between
fields (``rules``), resolving it from its sources (``load``) and its generated field reference (``reference``).

Import the public names from here: ``from tritongen.spec import Spec, load_spec``.
"""

from . import choices
from .choices import *  # noqa: F403 (every value set is public; choices.__all__ names them)
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
    *choices.__all__, "MODEL_ROLES", "Container", "CpuSpec", "Decoding", "EngineSpec", "KvCacheSpec", "Limits",
    "Lookahead", "ModelInfo", "Parallelism", "PrecisionSpec", "Scheduling", "Serving", "Spec", "Speculative",
    "apply_options", "apply_sets", "build_spec", "cross_check", "deep_merge", "dump_spec",
    "format_validation_error", "load_spec", "load_yaml_file", "parse_set",
]
