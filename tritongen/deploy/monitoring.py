"""Monitoring artefacts for a rendered repository: a Prometheus scrape config, recording and alert rules, and a
Grafana dashboard, all written against the LLM metrics the repository's models export
(templates/common/lib/llm_metrics.py) and Triton's own ``nv_inference_*`` counters.

``tritongen monitoring REPO`` writes them; ``promtool check config`` / ``check rules`` accept them (the tests run
both), and :func:`dashboard_problems` checks the dashboard against the fields Grafana needs to import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import UsageError

#: Where the files go inside the output folder.
PROMETHEUS_FILE = "prometheus.yml"
RECORDING_FILE = "rules/tritongen-recording.yml"
ALERTS_FILE = "rules/tritongen-alerts.yml"
DASHBOARD_FILE = "grafana/tritongen-dashboard.json"
#: The Grafana dashboard JSON model this is written for (Grafana 10/11).
GRAFANA_SCHEMA_VERSION = 39

#: Quantiles recorded for each latency histogram: metric stem -> quantiles.
QUANTILES = {
    "time_to_first_token_seconds": (0.5, 0.9, 0.99),
    "inter_token_latency_seconds": (0.5, 0.9, 0.99),
    "e2e_request_latency_seconds": (0.5, 0.99),
    "request_queue_seconds": (0.5, 0.99),
}


@dataclass
class MonitoringFacts:
    """What the artefacts are rendered from: the repository's lock file, or given directly."""

    name: str
    models: list[str]  #: the served front models (ensemble, tensorrt_llm_bls) the LLM metrics are labelled with
    target: str = "127.0.0.1:8002"  #: Triton's metrics endpoint host:port
    ttft_p99_slo_s: float = 2.0
    max_error_ratio: float = 0.05
    scrape_interval: str = "15s"
    extra_targets: list[str] = field(default_factory=list)  #: more host:port to scrape (the OpenAI front)


def facts_of(repo: Path, *, target: str | None = None, scrape_interval: str = "15s",
             openai_target: str | None = None) -> MonitoringFacts:
    """The facts of a rendered repository (its lock file and model folders)."""
    from ..repo.inspect import inspect_repo
    from ..repo.lock import read_lock

    lock = read_lock(Path(repo))
    if lock is None:
        raise UsageError(f"{repo}: no tritongen.lock.yaml; give a repository tritongen rendered",
                         hint="tritongen repo MODEL, then tritongen monitoring repos/<name>")
    spec = lock.get("spec") or {}
    serving = spec.get("serving") or {}
    metrics = serving.get("metrics") or {}
    if metrics.get("enabled") is False:
        raise UsageError(f"{repo}: its spec turns the LLM metrics off (serving.metrics.enabled: false)",
                         hint="render it again with --set serving.metrics.enabled=true")
    info = inspect_repo(Path(repo))
    prefix = serving.get("model_prefix") or ""
    fronts = [m for m in info.models if m in (prefix + "ensemble", prefix + "tensorrt_llm_bls")]
    port = serving.get("metrics_port") or 8002
    return MonitoringFacts(
        name=str(spec.get("name") or Path(repo).name), models=fronts or [prefix + "ensemble"],
        target=target or f"127.0.0.1:{port}", ttft_p99_slo_s=float(metrics.get("ttft_p99_slo_s", 2.0)),
        max_error_ratio=float(metrics.get("max_error_ratio", 0.05)), scrape_interval=scrape_interval,
        extra_targets=[openai_target] if openai_target else [])


def job_name(facts: MonitoringFacts) -> str:
    return f"tritongen-{facts.name}"


def _q(stem: str, quantile: float) -> str:
    return f"tritongen:{stem}:p{int(round(quantile * 100))}"


# -- Prometheus -------------------------------------------------------------------------------------------


def scrape_config(facts: MonitoringFacts) -> dict:
    """prometheus.yml: one job scraping Triton's metrics port (and the OpenAI front when given), the rules."""
    jobs = [{"job_name": job_name(facts), "metrics_path": "/metrics",
             "static_configs": [{"targets": [facts.target], "labels": {"repository": facts.name}}]}]
    if facts.extra_targets:
        jobs.append({"job_name": f"{job_name(facts)}-openai", "metrics_path": "/metrics",
                     "static_configs": [{"targets": list(facts.extra_targets), "labels": {"repository": facts.name}}]})
    return {
        "global": {"scrape_interval": facts.scrape_interval, "evaluation_interval": facts.scrape_interval},
        "rule_files": [RECORDING_FILE, ALERTS_FILE],
        "scrape_configs": jobs,
    }


def recording_rules(facts: MonitoringFacts) -> dict:
    """Quantiles of each latency histogram, tokens and requests per second, the error ratio, Triton's queue time."""
    rules = []
    for stem, quantiles in QUANTILES.items():
        for q in quantiles:
            rules.append({"record": _q(stem, q), "expr": f"histogram_quantile({q}, sum by (model, le) "
                                                         f"(rate(tritongen_{stem}_bucket[1m])))"})
    rules += [
        {"record": "tritongen:generation_tokens:rate1m",
         "expr": "sum by (model) (rate(tritongen_generation_tokens_total[1m]))"},
        {"record": "tritongen:prompt_tokens:rate1m", "expr": "sum by (model) (rate(tritongen_prompt_tokens_total[1m]))"},
        {"record": "tritongen:requests:rate1m", "expr": "sum by (model) (rate(tritongen_requests_total[1m]))"},
        {"record": "tritongen:error_ratio:rate5m",
         "expr": 'sum by (model) (rate(tritongen_requests_total{finish_reason="error"}[5m])) / '
                 "clamp_min(sum by (model) (rate(tritongen_requests_total[5m])), 1e-9)"},
        # Triton's own queue time, on every route (the engine route's ensemble has no tritongen queue histogram).
        {"record": "tritongen:triton_queue_seconds:avg5m",
         "expr": "sum by (model) (rate(nv_inference_queue_duration_us[5m])) / 1e6 / "
                 "clamp_min(sum by (model) (rate(nv_inference_request_success[5m])), 1e-9)"},
    ]
    return {"groups": [{"name": f"{job_name(facts)}-recording", "rules": rules}]}


def alert_rules(facts: MonitoringFacts) -> dict:
    """TTFT p99 above the spec's SLO, error ratio above its maximum, queue time growing, server down."""
    slo, ratio = facts.ttft_p99_slo_s, facts.max_error_ratio
    rules = [
        {"alert": "TritongenTTFTAboveSLO", "expr": f"{_q('time_to_first_token_seconds', 0.99)} > {slo}",
         "for": "5m", "labels": {"severity": "warning"},
         "annotations": {"summary": f"{{{{ $labels.model }}}}: TTFT p99 {{{{ $value | humanizeDuration }}}} is above "
                                    f"the {slo} s SLO (serving.metrics.ttft_p99_slo_s)"}},
        {"alert": "TritongenErrorRatioHigh", "expr": f"tritongen:error_ratio:rate5m > {ratio}", "for": "5m",
         "labels": {"severity": "critical"},
         "annotations": {"summary": f"{{{{ $labels.model }}}}: {{{{ $value | humanizePercentage }}}} of requests fail "
                                    f"(over {ratio:g}, serving.metrics.max_error_ratio)"}},
        {"alert": "TritongenQueueTimeGrowing",
         "expr": "tritongen:triton_queue_seconds:avg5m > 0.5 and deriv(tritongen:triton_queue_seconds:avg5m[10m]) > 0",
         "for": "10m", "labels": {"severity": "warning"},
         "annotations": {"summary": "{{ $labels.model }}: requests wait {{ $value | humanizeDuration }} in Triton's "
                                    "queue and it keeps growing (add replicas or lower the load)"}},
        {"alert": "TritongenServerDown", "expr": f'up{{job="{job_name(facts)}"}} == 0', "for": "1m",
         "labels": {"severity": "critical"},
         "annotations": {"summary": f"{facts.name}: Triton's metrics endpoint {{{{ $labels.instance }}}} does not "
                                    "answer"}},
    ]
    return {"groups": [{"name": f"{job_name(facts)}-alerts", "rules": rules}]}


# -- Grafana ----------------------------------------------------------------------------------------------


def _panel(pid: int, title: str, exprs: list[tuple[str, str]], unit: str, x: int, y: int) -> dict:
    return {
        "id": pid, "type": "timeseries", "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for i, (expr, legend) in enumerate(exprs)],
    }


def dashboard(facts: MonitoringFacts) -> dict:
    """A Grafana dashboard (JSON model) with one variable listing the repository's served models."""
    sel = 'model=~"$model"'
    panels_spec = [
        ("Time to first token", [(f"{_q('time_to_first_token_seconds', q)}{{{sel}}}", f"{{{{model}}}} p{int(q * 100)}")
                                 for q in (0.5, 0.99)], "s"),
        ("Inter-token latency (mean per request)",
         [(f"{_q('inter_token_latency_seconds', q)}{{{sel}}}", f"{{{{model}}}} p{int(q * 100)}") for q in (0.5, 0.99)],
         "s"),
        ("Generated tokens per second", [(f"tritongen:generation_tokens:rate1m{{{sel}}}", "{{model}}")], "short"),
        ("Requests per second by finish reason",
         [(f"sum by (model, finish_reason) (rate(tritongen_requests_total{{{sel}}}[1m]))",
           "{{model}} {{finish_reason}}")], "reqps"),
        ("Requests in flight", [(f"tritongen_requests_in_flight{{{sel}}}", "{{model}}")], "short"),
        ("End-to-end latency", [(f"{_q('e2e_request_latency_seconds', q)}{{{sel}}}", f"{{{{model}}}} p{int(q * 100)}")
                                for q in (0.5, 0.99)], "s"),
        ("Queue time", [(f"{_q('request_queue_seconds', 0.99)}{{{sel}}}", "{{model}} p99 (tritongen)"),
                        ("tritongen:triton_queue_seconds:avg5m", "{{model}} avg (Triton)")], "s"),
        ("Error ratio", [(f"tritongen:error_ratio:rate5m{{{sel}}}", "{{model}}")], "percentunit"),
    ]
    panels = [_panel(i + 1, title, exprs, unit, (i % 2) * 12, (i // 2) * 8)
              for i, (title, exprs, unit) in enumerate(panels_spec)]
    options = [{"text": m, "value": m, "selected": i == 0} for i, m in enumerate(facts.models)]
    return {
        "uid": f"tritongen-{facts.name}"[:40], "title": f"tritongen: {facts.name}",
        "tags": ["tritongen", "triton", "llm"], "timezone": "browser", "editable": True,
        "schemaVersion": GRAFANA_SCHEMA_VERSION, "version": 1, "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus",
             "current": {}, "hide": 0},
            {"name": "model", "type": "custom", "label": "model", "query": ",".join(facts.models),
             "options": options, "current": {"text": facts.models[0], "value": facts.models[0]},
             "multi": True, "includeAll": True, "hide": 0},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_problems(board: dict) -> list[str]:
    """What Grafana's dashboard import needs and this board lacks, one line each (empty: fine). Checked: the
    top-level fields, unique panel ids, each panel's type/title/gridPos (24-column grid), targets with unique
    refIds and an expr, and templating variables with a name and type."""
    problems = []
    for key, kind in (("title", str), ("uid", str), ("panels", list), ("schemaVersion", int), ("templating", dict),
                      ("time", dict)):
        if not isinstance(board.get(key), kind):
            problems.append(f"dashboard: {key} must be a {kind.__name__}")
    if len(str(board.get("uid", ""))) > 40:
        problems.append("dashboard: uid is longer than Grafana's 40 characters")
    ids = [p.get("id") for p in board.get("panels") or []]
    if len(ids) != len(set(ids)):
        problems.append("dashboard: panel ids repeat")
    for panel in board.get("panels") or []:
        where = f"panel {panel.get('id')!r}"
        for key in ("type", "title"):
            if not isinstance(panel.get(key), str) or not panel.get(key):
                problems.append(f"{where}: {key} is required")
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
            problems.append(f"{where}: gridPos needs integer h, w, x, y")
        elif grid["x"] + grid["w"] > 24:
            problems.append(f"{where}: gridPos passes the 24-column grid")
        refs = [t.get("refId") for t in panel.get("targets") or []]
        if not refs:
            problems.append(f"{where}: no targets")
        if len(refs) != len(set(refs)):
            problems.append(f"{where}: refIds repeat")
        for target in panel.get("targets") or []:
            if not target.get("expr"):
                problems.append(f"{where}: target {target.get('refId')!r} has no expr")
    for var in (board.get("templating") or {}).get("list") or []:
        if not var.get("name") or not var.get("type"):
            problems.append(f"templating: a variable needs a name and a type ({var})")
    return problems


# -- writing ------------------------------------------------------------------------------------------------


def render_files(facts: MonitoringFacts) -> dict[str, str]:
    """Relative path -> file text."""
    header = (f"# Generated by tritongen for repository {facts.name}; regenerate with `tritongen monitoring`, "
              "don't edit.\n")

    def y(data: dict) -> str:
        return header + yaml.safe_dump(data, sort_keys=False, width=120)

    return {
        PROMETHEUS_FILE: y(scrape_config(facts)),
        RECORDING_FILE: y(recording_rules(facts)),
        ALERTS_FILE: y(alert_rules(facts)),
        DASHBOARD_FILE: json.dumps(dashboard(facts), indent=2) + "\n",
    }


def write_files(files: dict[str, str], out: Path) -> list[Path]:
    """Write the files under ``out`` (created), and nowhere else."""
    out = Path(out).absolute()
    written = []
    for rel, text in files.items():
        path = (out / rel).resolve()
        if out.resolve() not in path.parents:
            raise UsageError(f"{rel}: would be written outside {out}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
