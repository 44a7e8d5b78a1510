"""``tritongen bench``: streaming load test of a served repository, with SLO gates for CI."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


def _levels(value: str) -> list[int]:
    try:
        levels = [int(x) for x in value.replace(" ", "").split(",") if x]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers, e.g. 1,8,32,64") from None
    if not levels or any(c < 1 for c in levels):
        raise click.BadParameter(f"{value!r}: concurrency levels must be positive")
    return levels


class _ProgressBar:
    """A live one-line bar on stderr; without a terminal, a line every 10 s and one per finished level."""

    def __init__(self, stream=None, min_interval: float = 0.1, log_interval: float = 10.0):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval if self.tty else log_interval
        self.last = 0.0
        self.level = None
        self.open_line = False

    def __call__(self, conc, done, total, tokens, errors, elapsed):
        if conc != self.level:
            self.end_level()
            self.level = conc
        finished = total is not None and done >= total
        now = time.monotonic()
        if not finished and now - self.last < self.min_interval:
            return
        self.last = now
        rate = tokens / elapsed if elapsed > 0 else 0.0
        if total:
            filled = int(24 * done / total)
            head = f"c={conc:<4} [{'#' * filled}{'-' * (24 - filled)}] {done}/{total} req"
        else:
            head = f"c={conc:<4} {done} req"
        text = f"{head}  {rate:,.0f} tok/s  {errors} err  {elapsed:5.1f}s"
        if self.tty:
            self.stream.write("\r" + text.ljust(78))
            self.open_line = True
            if finished:
                self.end_level()
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end_level(self):
        """Finish the current line (a --duration level does not know its total in advance)."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False


@click.command("bench")
@click.option("--url", help="Server address host:port (default: the running tritongen server, else 127.0.0.1).")
@click.option("--server", help="Name of a server started by `tritongen serve`.")
@click.option("--protocol", type=click.Choice(["grpc", "http", "openai"]), default="grpc", show_default=True,
              help="grpc: ModelStreamInfer streaming; http: the generate_stream endpoint; openai: streamed "
                   "/v1/completions (a Dynamo graph from `tritongen dynamo up`, or any OpenAI-compatible server).")
@click.option("--model", default="ensemble", show_default=True, help="Model to load (ensemble, tensorrt_llm_bls; "
              "with --protocol openai: the served model, by default the Dynamo graph's).")
@click.option("--concurrency", "concurrency", default="1,8,32,64", show_default=True,
              help="Comma-separated concurrency levels, run in order.")
@click.option("--input-len", type=int, default=128, show_default=True, help="Prompt tokens (synthetic prompts).")
@click.option("--output-len", type=int, default=128, show_default=True, help="Tokens generated per request.")
@click.option("--requests", type=int, help="Requests per level (default: 4 x concurrency, at least 8).")
@click.option("--duration", type=float, help="Seconds per level instead of a request count.")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False, exists=True),
              help="JSONL prompts file ({\"text\": ...} per line) instead of synthetic prompts.")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(file_okay=False, exists=True),
              help="Tokenizer for synthetic prompts (default: the served model's, from the server config).")
@click.option("--slo", help="Objectives that fail the run (exit 10), e.g. ttft_p99=500ms,itl_p99=50ms,error_rate=0.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Results directory (default: bench-results/<model>-<protocol>-<time>).")
@click.option("--repo", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The served repository, to record its spec from tritongen.lock.yaml (default: the server's).")
@click.option("--warmup", type=int, default=1, show_default=True, help="Unmeasured requests before the first level.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds one request may take.")
@click.option("--exact-output/--no-exact-output", default=None,
              help="Send min_tokens = max_tokens so every request generates exactly --output-len tokens "
                   "(default: when the model has a min_tokens input; the llmapi route's has none).")
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot.")
def command(url, server, protocol, model, concurrency, input_len, output_len, requests, duration, prompts_file,
            tokenizer_dir, slo, out_dir, repo, warmup, timeout, exact_output, no_plot) -> None:
    """Load-test a served repository: TTFT, inter-token latency, throughput per concurrency level.

    Each level keeps CONCURRENCY streaming requests in flight (closed loop) with exact output lengths, then
    reports request and token throughput, TTFT, ITL, TPOT and end-to-end latency (mean/p50/p90/p99/max),
    errors, and the client's own CPU per 1000 tokens. Results go to results.json, results.csv and
    throughput_latency.png with the spec, versions and git revision.

    \b
    Examples:
      tritongen bench --concurrency 1,8,32 --requests 64
      tritongen bench --protocol http --duration 30 --slo ttft_p99=500ms,itl_p99=50ms
      tritongen bench --url gpu-host:8001 --prompts prompts.jsonl --out results/
    """
    from ..clients import bench
    from ..errors import ClientError

    levels = _levels(concurrency)
    slos = bench.parse_slo(slo) if slo else []
    record = _server_record(server, url, protocol)
    if url is None:
        if record is None:
            url = "127.0.0.1:8001" if protocol == "grpc" else "127.0.0.1:8000"
        else:
            url = record.grpc_url if protocol == "grpc" else record.http_url
    if protocol == "openai" and record is not None and record.launcher == "dynamo":
        # A Dynamo graph serves its model under the spec's name and keeps no Triton repository.
        model = record.extra.get("model", model) if model == "ensemble" else model
        tokenizer_dir = tokenizer_dir or record.extra.get("tokenizer")
    if repo is None and record is not None and record.launcher != "dynamo" and Path(record.repo).is_dir():
        repo = Path(record.repo)
    config = bench.BenchConfig(
        url=url, protocol=protocol, model=model, concurrency=levels, input_len=input_len, output_len=output_len,
        requests=requests, duration=duration, prompts_file=prompts_file, tokenizer_dir=tokenizer_dir,
        exact_output=exact_output, warmup=warmup, timeout=timeout, repo=str(repo) if repo else None)
    config.validate()
    bench.require_ready(config)
    meta = bench.collect_metadata(config, http_url=record.http_url if record else None)
    meta["runtime"] = _runtime(record)
    prompts, source = bench.load_prompts(config, tokenizer_dir=meta.get("tokenizer_dir"))
    meta["prompts"] = source
    if source.startswith("words"):
        click.echo(click.style(f"note: prompts are {source}", fg="yellow"), err=True)
    click.echo(f"bench {model} over {protocol} at {url}: {input_len} in / {output_len} out tokens, "
               f"concurrency {','.join(map(str, levels))}", err=True)
    bar = _ProgressBar()
    result = bench.run(config, prompts=prompts, progress=bar, metadata=meta, check_ready=False)
    bar.end_level()
    if slos:
        bench.apply_slos(result, slos)
    out_dir = out_dir or Path("bench-results") / f"{model}-{protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
    files = bench.write_results(result, out_dir, plot=not no_plot)
    click.echo(bench.format_table(result.levels))
    click.echo("wrote " + ", ".join(str(p) for p in files.values()))
    if result.slo:
        verdict = "all met" if not result.slo_violations else f"{len(result.slo_violations)} broken"
        click.echo(f"SLO {', '.join(result.slo)}: {verdict}")
    if result.levels and all(lv.completed == 0 for lv in result.levels):
        first = next((m for lv in result.levels for m in lv.error_messages), "unknown error")
        raise ClientError(f"every request failed: {first}")
    bench.raise_for_slos(result)
    if any(lv.errors for lv in result.levels):
        n = sum(lv.errors for lv in result.levels)
        click.echo(click.style(f"warning: {n} request(s) failed (see error_messages in results.json)",
                               fg="yellow"), err=True)


def _runtime(record) -> dict:
    """How the benchmarked server runs: a container (and its image) only when tritongen started it in one."""
    if record is None:
        return {"kind": "unknown (not a server tritongen started)", "container": None}
    if record.runtime == "docker":
        return {"kind": "docker", "server": record.name, "container": {"image": record.image,
                                                                       "name": record.container}}
    return {"kind": record.runtime, "server": record.name, "container": None,
            "tritonserver": record.extra.get("source") or (record.command[:1] or [None])[0]}


def _server_record(server: str | None, url: str | None, protocol: str):
    """The tritongen server record for --server, for the --url port, or the only running one."""
    from ..errors import ServerError, UsageError
    from ..runtime import state

    # A --url may be any checkout's server: look it up among all records.
    records = state.find(server, everyone=bool(url) and not server)
    if server and not records:
        raise ServerError(f"no tritongen server named {server!r}", hint="see `tritongen status` or pass --url")
    if url:
        port = url.rsplit(":", 1)[-1]
        return next((r for r in records if str(r.grpc_port if protocol == "grpc" else r.http_port) == port), None)
    if len(records) > 1:
        raise UsageError(f"several servers are running ({', '.join(r.name for r in records)}); pass --server or --url")
    return records[0] if records else None
