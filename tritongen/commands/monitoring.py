"""``tritongen monitoring``: Prometheus scrape config, recording/alert rules and a Grafana dashboard for a
rendered repository."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("monitoring")
@click.argument("repo", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: deploy/<name>/monitoring).")
@click.option("--target", help="Triton's metrics endpoint host:port to scrape (default: 127.0.0.1 and the spec's "
              "serving.metrics_port).")
@click.option("--openai-target", help="Also scrape the OpenAI front's /metrics at this host:port.")
@click.option("--scrape-interval", default="15s", show_default=True,
              help="Prometheus scrape and rule evaluation interval.")
@click.option("--dry-run", is_flag=True, help="Print the files instead of writing them.")
def command(repo, out, target, openai_target, scrape_interval, dry_run) -> None:
    """Write monitoring artefacts for REPO (a repository `tritongen repo` rendered).

    prometheus.yml (a job scraping Triton's metrics port, the rule files), rules/tritongen-recording.yml
    (TTFT / inter-token / e2e / queue quantiles, tok/s, req/s, error ratio, Triton's queue time),
    rules/tritongen-alerts.yml (TTFT p99 above serving.metrics.ttft_p99_slo_s, error ratio above
    serving.metrics.max_error_ratio, queue time growing, server down) and grafana/tritongen-dashboard.json
    (one panel per figure, a variable listing the repository's served models). Check them with
    `promtool check config DIR/prometheus.yml` and `promtool check rules DIR/rules/*.yml`.

    \b
    Examples:
      tritongen monitoring repos/tiny
      prometheus --config.file=deploy/tiny/monitoring/prometheus.yml --web.listen-address=127.0.0.1:9090
      tritongen monitoring repos/tiny --openai-target 127.0.0.1:9000 --dry-run
    """
    from ..deploy import monitoring

    facts = monitoring.facts_of(repo, target=target, scrape_interval=scrape_interval, openai_target=openai_target)
    files = monitoring.render_files(facts)
    if dry_run:
        for rel, text in files.items():
            click.echo(f"--- {rel}")
            click.echo(text, nl=False)
        return
    out = out or Path("deploy") / facts.name / "monitoring"
    for path in monitoring.write_files(files, out):
        click.echo(f"wrote {path}")
