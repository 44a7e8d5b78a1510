"""``tritongen plan``: will MODEL fit on these GPUs, on how many, how fast, and with which settings."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli import resolve, spec_options


def _detect_gpu() -> str | None:
    """The first GPU nvidia-smi reports, or None when there is none (or no nvidia-smi)."""
    from .. import proc
    from ..errors import MissingDependency

    try:
        rc, out = proc.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], check=False)
    except MissingDependency:
        return None
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[0] if rc == 0 and lines else None


def _explicit_parallelism(kwargs: dict) -> bool:
    if kwargs.get("tp") is not None or kwargs.get("pp") is not None:
        return True
    if any(s.split("=", 1)[0].strip() in ("parallelism.tp", "parallelism.pp") for s in kwargs.get("sets") or ()):
        return True
    from ..spec import load_yaml_file

    return any("parallelism" in load_yaml_file(f) for f in (kwargs.get("spec_file"), kwargs.get("plan_file")) if f)


@click.command("plan")
@click.argument("model", required=False)
@spec_options
@click.option("--num-gpus", type=int, help="GPUs you have (default: search layouts up to 64 GPUs).")
@click.option("--gpus-per-node", type=int, help="GPUs per server (default: the GPU's NVLink domain, else 8).")
@click.option("--input-len", type=int, help="Prompt tokens per request [default: 1024, less when the model's "
              "context is shorter].")
@click.option("--output-len", type=int, help="Generated tokens per request [default: 256, less when the model's "
              "context is shorter].")
@click.option("--concurrency", type=int, default=16, show_default=True, help="Requests in flight at once.")
@click.option("--traffic", type=click.Choice(["auto", "chat", "long-prompt", "batch"]), default="auto",
              metavar="KIND", show_default=True, help="auto | chat | long-prompt | batch: chat turns KV-cache reuse "
              "on (shared prefixes), long-prompt chunked context; auto and chat chunk prompts of 4096+ tokens.")
@click.option("--replicas", metavar="auto|N", help="auto: compare every tp/pp layout x replicas on --num-gpus and keep the best "
              "output tok/s per GPU; N: that many replicas. --concurrency is then the whole deployment's.")
@click.option("--slo", metavar="OBJECTIVES", help="Latency objectives, e.g. ttft_p99=500ms,itl_p50=30ms,e2e_p99=20s (also ttft_p50, "
              "itl_p99, e2e_p50): the layout, replicas and requests in flight with the most tok/s per GPU within "
              "them, or a warning that nothing meets them.")
@click.option("--expect", metavar="CLAIMS", help="Check claimed figures against the bandwidth/compute roofline, e.g. "
              "tok_s=30000,ttft_ms=50 (also tok_s_per_gpu, tok_s_per_user, itl_ms).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--write-spec", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the plan's settings as a spec file for `tritongen repo MODEL --spec FILE`.")
def command(model, num_gpus, gpus_per_node, input_len, output_len, concurrency, traffic, replicas, slo, expect,
            as_json, write_spec, **kwargs) -> None:
    """Size MODEL on a GPU type: memory fit, the smallest tp/pp, speed, and the matching settings.

    All figures are first-order estimates from the GPU's datasheet and the model's shape (see
    docs/perf-estimates.md for the method and how close it comes to published TensorRT-LLM numbers).

    \b
    Examples:
      tritongen plan llama3-8b --gpu h100 --precision fp8 --kv-dtype fp8 --concurrency 64
      tritongen plan llama3-70b --gpu a100-80gb --input-len 2048 --output-len 512 --json
      tritongen plan llama3-70b --gpu h100 --precision fp8 --write-spec plan.yaml
      tritongen repo llama3-70b --spec plan.yaml
      tritongen plan llama3-8b --gpu "NVIDIA H100 NVL" --traffic chat --input-len 8192
      tritongen plan llama3-70b --gpu h200 --precision fp8 --num-gpus 8 --replicas auto --concurrency 2000
      tritongen plan llama3-70b --gpu h200 --precision fp8 --num-gpus 8 --replicas auto --slo ttft_p99=1s,itl_p50=40ms
      tritongen plan llama3-70b --gpu h200 --precision fp8 --expect tok_s=30000,ttft_ms=20
      tritongen plan my-model --checkpoint ./ckpt --gpu l40s   (shape from its config.json)

    GPU names must match the catalogue exactly (key, alias or the nvidia-smi name); a near miss is an error
    with a did-you-mean. With FP8/FP4 weights on a GPU that runs it, the KV cache is FP8 unless --kv-dtype says
    otherwise; the RECOMMENDED section says what each setting buys, and --write-spec carries all of them.
    """
    from ..errors import UsageError
    from ..planner import Workload, make_deployment, parse_claims, parse_slo

    explicit = _explicit_parallelism(kwargs)
    spec = resolve(model, kwargs)
    gpu = spec.engine.gpu or _detect_gpu()
    if not gpu:
        from ..gpus import table

        raise UsageError("plan needs a GPU type: give --gpu (no GPU was found with nvidia-smi)",
                         hint=f"known GPUs: {', '.join(table())}")
    input_len, output_len = default_lengths(input_len, output_len, spec.model.context_length)
    workload = Workload(input_len, output_len, concurrency)
    if replicas is not None and replicas != "auto" and not replicas.isdigit():
        raise UsageError(f"--replicas {replicas}: give auto or a number of replicas")
    if replicas == "auto" and not num_gpus:
        raise UsageError("--replicas auto needs --num-gpus (the GPUs to spread replicas over)")
    plan = make_deployment(spec, gpu, workload, num_gpus=num_gpus, gpus_per_node=gpus_per_node,
                           tp=spec.parallelism.tp if explicit else None, pp=spec.parallelism.pp if explicit else None,
                           traffic=traffic, replicas=replicas, slo=parse_slo(slo) if slo else None,
                           claims=parse_claims(expect) if expect else None)
    written = _write_spec(spec, plan, write_spec) if write_spec else None
    if as_json:
        data = plan.to_dict()
        data["spec_file"] = str(written) if written else None
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(render_table(plan))
    if written:
        click.echo(f"\nwrote {written}; apply it with: tritongen repo {plan.model} --spec {written}")


def default_lengths(input_len: int | None, output_len: int | None, context: int) -> tuple[int, int]:
    """The workload's lengths: what was given, else 1024 + 256 cut down to the model's context (a 2k-context
    model plans 1024 + 256, a 1k one 820 + 204) so the defaults never ask for more than the model holds."""
    out = output_len if output_len is not None else 256
    inp = input_len if input_len is not None else 1024
    if inp + out > context:
        if output_len is None:
            out = max(1, min(out, context // 5))
        if input_len is None:
            inp = max(1, context - out)
    return inp, out


def _write_spec(spec, plan, path: Path) -> Path:
    """Write the plan's overrides as a YAML spec after checking that the merged spec is valid."""
    import yaml

    from ..spec import build_spec, deep_merge, dump_spec

    overrides = {"model": {"name": spec.model.name}, **plan.spec_overrides}
    if spec.model.checkpoint_dir is not None:
        overrides["model"]["checkpoint_dir"] = str(spec.model.checkpoint_dir)
    build_spec(deep_merge(dump_spec(spec), overrides), source=f"plan for {spec.model.name}")
    w = plan.workload
    fleet = (f"{plan.replicas} replicas of {plan.num_gpus}" if plan.replicas > 1 else f"{plan.num_gpus}")
    header = (f"# Written by `tritongen plan`: {plan.model} on {fleet} x {plan.gpu.key} for {w.input_len} "
              f"input + {w.output_len} output tokens at concurrency {w.concurrency}.\n"
              + (f"# Each replica is one `tritongen repo` deployment; run {plan.replicas} of them behind a "
                 "load balancer (e.g. `tritongen k8s --replicas N`).\n" if plan.replicas > 1 else "")
              + "# First-order sizing (docs/perf-estimates.md). Apply: tritongen repo "
              f"{plan.model} --spec {path.name}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(overrides, sort_keys=False))
    return path


def _fmt_tps(v: float) -> str:
    return f"{v:,.0f} tok/s" if v >= 100 else f"{v:,.1f} tok/s"


def render_table(plan) -> str:
    """The plan as a terminal report."""
    g, w, m, p = plan.gpu, plan.workload, plan.memory, plan.performance
    out: list[str] = []
    add = out.append
    head = (f"{plan.model} on {plan.num_gpus} x {g.key} ({g.name}, {g.memory_gb:g} GB, {g.bandwidth_gbps:g} GB/s); "
            f"weights {plan.precision}, KV cache {plan.kv_dtype}")
    add(click.style(head, bold=True))
    add(f"workload: {w.input_len} input + {w.output_len} output tokens, {w.concurrency} concurrent requests")
    add("")
    add(click.style(f"MEMORY per GPU (GB = 1e9 bytes), tp={plan.tp} pp={plan.pp}", bold=True))
    rows = [
        ("GPU memory", f"{m.gpu_memory_gb:8.2f}"),
        ("weights", f"{m.weights_gb:8.2f}   ({m.weights_total_gb:.2f} in all / {plan.num_gpus} GPU(s))"),
        ("runtime allowance", f"{m.allowance_gb:8.2f}   (fixed {m.runtime_fixed_gb:.2f}, activations "
                              f"{m.activations_gb:.2f}, logits {m.logits_gb:.2f}, CUDA graphs {m.cuda_graphs_gb:.2f})"),
        ("free after weights", f"{m.free_gb:8.2f}"),
        (f"KV cache pool (x {m.kv_fraction:g})", f"{m.kv_pool_gb:8.2f}   ({m.kv_pool_tokens:,} tokens)"),
        ("KV bytes per token", f"{m.kv_bytes_per_token:8,}   (whole model {m.kv_bytes_per_token_model:,})"),
    ]
    for label, value in rows:
        add(f"  {label:<28}{value}")
    verdict = "fits" if m.fits else "does NOT fit"
    add(f"  -> {verdict}: the KV pool holds {m.sequences:,} concurrent {w.seq_len}-token sequences "
        f"({m.blocks_per_sequence} blocks of {m.tokens_per_block}); largest single context {m.max_context:,} tokens")
    add("")
    add(click.style("PARALLELISM", bold=True))
    for line in plan.explanation:
        add(f"  {line}")
    add("")
    add(click.style(f"PERFORMANCE (first-order estimate at {p.batch} in flight)", bold=True))
    perf_rows = [
        ("TTFT, idle engine", f"{p.ttft_ms:,.1f} ms (prefill of {w.input_len} tokens + the serving front)"),
        ("decode per sequence", f"{_fmt_tps(p.decode_tps_per_seq)} ({p.decode_step_ms:.2f} ms/token, "
                                f"{p.decode_bound}-bound)"),
        ("decode aggregate", _fmt_tps(p.decode_tps_aggregate)),
        ("sustained incl. prefill", _fmt_tps(p.sustained_output_tps)),
        ("request latency", f"{p.e2e_latency_s:,.2f} s for {w.output_len} tokens"),
        ("max throughput", f"{_fmt_tps(p.max_throughput_output_tps)} at {p.max_throughput_batch} in flight"),
    ]
    for label, value in perf_rows:
        add(f"  {label:<28}{value}")
    for line in _assumptions_summary():
        add(line)
    add("")
    add(click.style("SETTINGS", bold=True))
    ov = plan.spec_overrides
    lim = ov["limits"]
    sets = [f"--precision {ov['precision']['format']}", f"--kv-dtype {ov['precision']['kv_cache_dtype']}",
            f"--tp {plan.tp}", f"--pp {plan.pp}", f"--gpu {g.key}",
            *(f"--set limits.{k}={v}" for k, v in lim.items()),
            f"--set kv_cache.free_gpu_mem_fraction={ov['kv_cache']['free_gpu_mem_fraction']:g}",
            f"--set kv_cache.enable_reuse={str(ov['kv_cache']['enable_reuse']).lower()}",
            f"--set scheduling.enable_chunked_context={str(ov['scheduling']['enable_chunked_context']).lower()}"]
    add(f"  spec:              {' '.join(sets)}")
    add(f"  convert/quantize:  {' '.join(plan.convert_flags)}")
    add(f"  trtllm-build:      {' '.join(plan.build_flags)}")
    add("  tensorrt_llm:      " + " ".join(f"{k}={v}" for k, v in plan.runtime_parameters.items()))
    if plan.fleet:
        add("")
        add(click.style(f"REPLICAS: {plan.replicas} x (tp={plan.tp} pp={plan.pp}) on {plan.replicas * plan.num_gpus} "
                        "GPUs; layouts x replicas compared, best first", bold=True))
        for o in plan.fleet:
            slo_mark = "" if o["meets_slo"] is None else ("  meets SLO" if o["meets_slo"] else "  misses SLO")
            lat = o["latency_ms"]
            add(f"  {o['replicas']:>3} x tp={o['tp']} pp={o['pp']}: {o['output_tps']:>10,.0f} tok/s "
                f"({o['output_tps_per_gpu']:,.0f}/GPU), {o['in_flight_per_replica']} in flight per replica "
                f"(holds {o['capacity_per_replica']}); ttft p99 {lat['ttft_p99']:,.0f} ms, itl p50 "
                f"{lat['itl_p50']:,.1f} ms{slo_mark}")
    if plan.claims:
        add("")
        add(click.style("CLAIMS against the roofline (datasheet peaks at 100%)", bold=True))
        for c in plan.claims:
            add(f"  {c['metric']}={c['claimed']:g}: {c['verdict'].upper()} - {c['why']}")
    if plan.recommendations:
        add("")
        add(click.style("RECOMMENDED (applied unless marked 'suggested')", bold=True))
        for r in plan.recommendations:
            mark = "" if r.get("applied") else " (suggested)"
            buys = f": {r['buys']}" if r.get("buys") else ""
            add(f"  {r['setting']}={str(r['value']).lower()}{mark}{buys}")
            add(f"      why: {r['why']}")
    for warning in plan.warnings:
        add(click.style(f"warning: {warning}", fg="yellow"))
    return "\n".join(out)


def _assumptions_summary() -> list[str]:
    """The estimate's terms in three lines, with today's values from ASSUMPTIONS (so they cannot go stale)."""
    from ..planner import ASSUMPTIONS

    def a(name: str) -> float:
        return ASSUMPTIONS[name]["value"]

    return [f"  assumptions: per layer, GEMMs and attention each bound by their own resource: bytes at "
            f"{a('bandwidth_efficiency'):.0%} of peak",
            f"  bandwidth, math at {a('compute_efficiency'):.0%} of dense tensor peak (FP4 GEMMs "
            f"{a('fp4_gemm_share'):g} of that); +{a('step_overhead_s') * 1e3:g} ms per step;",
            "  tp adds 2 ring all-reduces per layer; TTFT = the prefill's own pass (on a busy engine after its running "
            "step)",
            f"  + {a('serving_stack_ttft_s') * 1e3:g} ms for the serving front (tokenizer, ensemble hops)"]
