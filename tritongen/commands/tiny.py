"""``tritongen tiny``: build the offline tiny model (cached)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("tiny")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where to build it (default: <cache>/models/tiny).")
@click.option("--force", is_flag=True, help="Rebuild even if an identical build exists.")
def command(out, force) -> None:
    """Build the tiny Llama and its tokenizer offline (deterministic; cached, so built once)."""
    from ..paths import cache_dir
    from ..tiny import build, is_built

    dest = out or cache_dir() / "models" / "tiny"
    if is_built(dest) and not force:
        click.echo(f"tiny model already built at {dest}")
        return
    build(dest, echo=lambda m: click.echo(m, err=True), force=force)
    click.echo(f"tiny model at {dest}")
