"""``tritongen metrics``: a live view of a running server's LLM metrics, read from its metrics endpoint."""

from __future__ import annotations

import json
import sys

import click


def _target(target: str | None) -> str:
    """A server name (``tritongen status``), host:port or URL; default: the only running server, else 8002."""
    from ..errors import UsageError
    from ..runtime import state

    if target and (":" in target or "/" in target):
        return target
    records = state.find(target)
    if target and not records:
        from ..errors import ServerError

        raise ServerError(f"no tritongen server named {target!r}",
                          hint="see `tritongen status`, or give the metrics endpoint as host:port")
    if len(records) > 1:
        raise UsageError(f"several servers are running ({', '.join(r.name for r in records)}); name one")
    if records:
        return f"127.0.0.1:{records[0].metrics_port}"
    return "127.0.0.1:8002"


@click.command("metrics")
@click.argument("target", required=False)
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True,
              help="Seconds between scrapes (the window tok/s and req/s are measured over).")
@click.option("--once", is_flag=True, help="Print one measurement (two scrapes --interval apart) and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table (one object per measurement).")
def command(target, interval, once, as_json) -> None:
    """Show tok/s, TTFT p50/p99, inter-token latency, queue time, requests in flight and errors per model.

    TARGET is a server started by `tritongen serve` (its name), or a metrics endpoint (host:port or URL);
    default: the only running tritongen server, else 127.0.0.1:8002. The figures come from the tritongen_*
    metrics the repository's models export (README "Monitoring"). Quantiles cover the last interval when
    requests finished in it, else the server's whole life (`window` in the JSON says which). Ctrl-C stops.

    \b
    Examples:
      tritongen metrics                      # the running server, refreshed every 2 s
      tritongen metrics tiny --once --json   # one measurement for scripts
      tritongen metrics 127.0.0.1:8002 --interval 5
    """
    from ..clients import metrics as m

    url = _target(target)
    before = m.scrape(url)
    import time

    t0 = time.monotonic()
    try:
        while True:
            time.sleep(interval)
            after = m.scrape(url)
            t1 = time.monotonic()
            snap = m.figures(before, after, t1 - t0, m.metrics_url(url))
            if as_json:
                click.echo(json.dumps(snap.as_dict()))
            else:
                if not once and sys.stdout.isatty():
                    click.echo("\x1b[2J\x1b[H", nl=False)
                click.echo(m.table(snap))
            if once:
                return
            before, t0 = after, t1
    except KeyboardInterrupt:
        return
