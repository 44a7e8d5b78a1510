"""Streaming load generator and metrics for a served repository (``tritongen bench``).

It speaks the ensemble's client contract (text_input, max_tokens, min_tokens, stream=true,
return_num_output_tokens, a unique request id per request) over

- gRPC bidirectional streaming with ``grpc.aio`` and tritonclient's protobuf stubs (the default). The stubs are
  used directly rather than through ``tritonclient.grpc.aio.InferenceServerClient`` because that client cannot
  ask for ``triton_enable_empty_final_response`` (a reserved parameter), without which a decoupled stream never
  says that a request is finished; requests are built once per prompt and copied, and only the two INT32 count
  outputs are decoded, so the client stays cheap;
- HTTP ``/v2/models/<model>/generate_stream`` (server-sent events) with ``aiohttp``.

Every level runs ``concurrency`` workers that each keep one request in flight (closed loop) until ``requests``
have been sent or ``duration`` seconds have passed. Per level it reports request throughput, output tokens/s,
TTFT, inter-token latency (ITL: every gap between tokens), time per output token (TPOT: per-request mean gap),
end-to-end latency (mean/p50/p90/p99/max), errors and the client's own CPU time (``time.process_time``, all
threads) per 1000 output tokens.

Reuse from Python (results are plain dataclasses with ``to_dict()``):

    from tritongen.clients.bench import BenchConfig, run, run_level, load_prompts
    result = run(BenchConfig(url="127.0.0.1:8001", concurrency=[1, 8], requests=32))
    for level in result.levels:
        print(level.concurrency, level.output_tokens_per_s, level.ttft_ms.p99)

    # or one level inside your own event loop (e.g. while sampling server CPU):
    prompts = load_prompts(config)
    level = await run_level(config, 64, prompts)
"""

from .config import BenchConfig, Prompt
from .metadata import collect_metadata, git_revision
from .prompts import load_prompts, synthetic_prompts
from .report import format_table, write_plot, write_results
from .results import (
    SCHEMA,
    BenchResult,
    LevelResult,
    RequestRecord,
    Stats,
    percentile,
    record_tokens,
    summarize,
)
from .runner import Progress, require_ready, run, run_level
from .slo import Slo, apply_slos, check_slos, parse_slo, raise_for_slos
from .transports import GrpcTransport, HttpTransport, make_transport, request_values

__all__ = [
    "SCHEMA", "BenchConfig", "BenchResult", "GrpcTransport", "HttpTransport", "LevelResult", "Progress", "Prompt",
    "RequestRecord", "Slo", "Stats", "apply_slos", "check_slos", "collect_metadata", "format_table", "git_revision",
    "load_prompts", "make_transport", "parse_slo", "percentile", "raise_for_slos", "record_tokens", "request_values",
    "require_ready", "run", "run_level", "summarize", "synthetic_prompts", "write_plot", "write_results",
]
