"""The output files (results.json, results.csv, throughput_latency.png) and the printed table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ...errors import MissingDependency
from .results import BenchResult, LevelResult, Stats


def write_results(result: BenchResult, out_dir: Path, *, plot: bool = True) -> dict[str, Path]:
    """results.json, results.csv and (when matplotlib is installed) throughput_latency.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / "results.json", "csv": out_dir / "results.csv"}
    files["json"].write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    rows = [lv.flat() for lv in result.levels]
    context = {"model": result.config.model, "protocol": result.config.protocol,
               "input_len": result.config.input_len, "output_len": result.config.output_len,
               "git_revision": result.metadata.get("git_revision"),
               "tritongen": (result.metadata.get("versions") or {}).get("tritongen"),
               "tritonserver": (result.metadata.get("versions") or {}).get("tritonserver"),
               "spec_source": result.metadata.get("spec_source")}
    with open(files["csv"], "w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) + list(context))
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, **context})
    if plot:
        files["png"] = write_plot(result, out_dir / "throughput_latency.png")
    return files


def write_plot(result: BenchResult, path: Path) -> Path:
    """Throughput vs latency, one point per concurrency level (matplotlib, Agg backend)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("matplotlib is needed for the plot", hint="pip install 'tritongen[bench]'") from None
    levels = [lv for lv in result.levels if lv.completed]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    tps = [lv.output_tokens_per_s for lv in levels]
    for stat, style in (("p50", "o-"), ("p99", "s--")):
        left.plot(tps, [lv.e2e_ms.__dict__[stat] for lv in levels], style, label=f"end-to-end {stat}")
    for lv in levels:
        left.annotate(f"c={lv.concurrency}", (lv.output_tokens_per_s, lv.e2e_ms.p50), textcoords="offset points",
                      xytext=(4, 6), fontsize=8)
    left.set_xlabel("output tokens/s (all requests)")
    left.set_ylabel("request latency (ms)")
    left.set_title("throughput vs latency")
    left.grid(alpha=0.3)
    left.legend()
    conc = [lv.concurrency for lv in levels]
    for attr, stat, style in (("ttft_ms", "p50", "o-"), ("ttft_ms", "p99", "o--"), ("itl_ms", "p50", "s-"),
                              ("itl_ms", "p99", "s--")):
        right.plot(conc, [getattr(lv, attr).__dict__[stat] for lv in levels], style,
                   label=f"{attr.split('_')[0].upper()} {stat}")
    if len(set(conc)) > 1:
        right.set_xscale("log", base=2)
    right.set_xlabel("concurrency")
    right.set_ylabel("ms")
    right.set_title("TTFT and inter-token latency")
    right.grid(alpha=0.3)
    right.legend()
    cfg = result.config
    fig.suptitle(f"{cfg.model} over {cfg.protocol} at {cfg.url}: {cfg.input_len} in / {cfg.output_len} out tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_table(levels: list[LevelResult]) -> str:
    """The per-level summary printed at the end of a run."""
    head = (f"{'conc':>5} {'reqs':>6} {'err':>4} {'req/s':>8} {'out tok/s':>10} {'TTFT p50/p99 ms':>17} "
            f"{'ITL p50/p99 ms':>16} {'E2E p50/p99 ms':>17} {'client CPU':>11}")
    lines = [head]

    def pair(s: Stats) -> str:
        return "-" if s.p50 is None else f"{s.p50:.1f}/{s.p99:.1f}"

    for lv in levels:
        cpu = "-" if lv.client_cpu_ms_per_1k_tokens is None else f"{lv.client_cpu_ms_per_1k_tokens:.0f}ms/1k"
        lines.append(f"{lv.concurrency:>5} {lv.requests:>6} {lv.errors:>4} {lv.request_throughput:>8.2f} "
                     f"{lv.output_tokens_per_s:>10.1f} {pair(lv.ttft_ms):>17} {pair(lv.itl_ms):>16} "
                     f"{pair(lv.e2e_ms):>17} {cpu:>11}")
    return "\n".join(lines)
