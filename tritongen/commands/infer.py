"""``tritongen infer``: send one prompt to a running server and print the answer as it streams."""

from __future__ import annotations

import json
import sys

import click

from ..errors import ServerError, UsageError


def default_target(server: str | None, protocol: str) -> tuple[str, str]:
    """(address, model prefix) of the named (or only) tritongen server, else the default local port."""
    from ..runtime import state

    records = state.find(server)
    if server and not records:
        raise ServerError(f"no tritongen server named {server!r}", hint="see `tritongen status` or pass --url")
    if len(records) > 1:
        raise UsageError(f"several servers are running ({', '.join(r.name for r in records)}); pass --server or --url")
    if records:
        return (records[0].grpc_url if protocol == "grpc" else records[0].http_url), records[0].model_prefix
    return ("127.0.0.1:8001" if protocol == "grpc" else "127.0.0.1:8000"), ""


def target_options(protocol_help: str):
    """The options that pick the server a client command talks to (--url, --server, --protocol), shared by
    ``infer`` and ``bench``; ``protocol_help`` says what each protocol means for the command."""
    def apply(func):
        for opt in reversed([
            click.option("--url", help="Server address host:port (default: the running tritongen server, else "
                                       "127.0.0.1)."),
            click.option("--server", help="Name of a server started by `tritongen serve`."),
            click.option("--protocol", type=click.Choice(["grpc", "http", "openai"]), default="grpc",
                         show_default=True, help=protocol_help),
        ]):
            func = opt(func)
        return func
    return apply


def _first(value):
    """A scalar from an output that arrives nested over gRPC ([[n]]) and flat over HTTP (n)."""
    while isinstance(value, list):
        value = value[0] if value else None
    return value


@click.command("infer")
@click.argument("prompt")
@target_options("grpc: stream_infer; http: the generate / generate_stream endpoints; openai: /v1/completions "
                "(/v1/chat/completions with --chat) of a Dynamo graph or any OpenAI-compatible server.")
@click.option("--model", help="ensemble (default; with the served repository's model prefix), tensorrt_llm_bls, ...")
@click.option("--max-tokens", type=click.IntRange(1, 2**31 - 1), default=64, show_default=True,
              help="Tokens to generate at most (the contract's INT32).")
@click.option("--temperature", type=float, help="Sampling temperature (needs --top-k or --top-p to sample).")
@click.option("--top-k", type=int, help="Sample from the k most likely tokens (1 = greedy).")
@click.option("--top-p", type=float, help="Nucleus sampling threshold.")
@click.option("--seed", type=int, help="Random seed for sampling (same seed, same text).")
@click.option("--stop", "stop_words", multiple=True, help="Stop when this text is generated (repeatable).")
@click.option("--bad-word", "bad_words", multiple=True, help="Never generate this text (repeatable).")
@click.option("--chat", is_flag=True, help="Format the prompt with the model's chat template.")
@click.option("--min-tokens", type=int, help="Generate at least this many tokens.")
@click.option("--guide-type", type=click.Choice(["json", "json_schema", "regex", "ebnf_grammar", "structural_tag"]),
              help="Structured output: hold the answer to --guide (json: any JSON object; needs a repository "
                   "rendered with serving.guided_decoding=xgrammar).")
@click.option("--guide", help="The JSON schema, regex or EBNF grammar for --guide-type (@FILE reads a file).")
@click.option("--no-stream", is_flag=True, help="Wait for the whole answer instead of streaming.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (text, timings, token counts).")
@click.option("--lora", help="LoRA adapter by name (the repository's lora.adapters; openai: the model).")
def command(prompt, url, server, protocol, model, max_tokens, temperature, top_k, top_p, seed, stop_words,
            bad_words, chat, min_tokens, guide_type, guide, no_stream, as_json, lora) -> None:
    """Send PROMPT to a running server and print the completion as it arrives.

    \b
    Examples:
      tritongen infer "Tell me about rivers" --max-tokens 32
      tritongen infer "Hi" --chat --top-p 0.9 --temperature 0.7 --seed 1
      tritongen infer "Hi" --protocol http --no-stream
      tritongen infer "A person:" --guide-type json_schema --guide @person.schema.json
    """
    guide = _guide(guide_type, guide)
    if protocol == "openai":
        if guide_type:
            raise UsageError("--guide-type is for --protocol grpc/http; an OpenAI server takes response_format")
        return _openai(prompt, url, server, lora or model, max_tokens, chat, as_json,
                       dict(temperature=temperature, top_p=top_p, seed=seed, stop=list(stop_words) or None))
    from ..clients.triton import GenerateParams, LLMClient

    params = GenerateParams(
        max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
        stop=list(stop_words), bad_words=list(bad_words), chat=chat, min_tokens=min_tokens,
        return_num_tokens=True, guide_type=guide_type, guide=guide, lora_name=lora,
    )
    prefix = ""
    if not url:
        url, prefix = default_target(server, protocol)
    client = LLMClient(url, protocol=protocol, model=model or prefix + "ensemble")
    if as_json or no_stream:
        result = client.generate(prompt, params, stream=not no_stream)
        if as_json:
            click.echo(json.dumps({"text": result.text, "request_id": result.request_id,
                                   "elapsed_s": round(result.elapsed, 4),
                                   "ttft_s": None if result.ttft is None else round(result.ttft, 4),
                                   "chunks": len(result.chunks), **result.extras}, ensure_ascii=False))
        else:
            click.echo(result.text)
        return
    chunks = 0
    first = last = None
    extras: dict = {}
    for chunk in client.stream(prompt, params):
        if chunk.text:
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            chunks += 1
            first = first if first is not None else chunk.at
        last = chunk.at
        extras.update(chunk.extras)
    sys.stdout.write("\n")
    n_out = _first(extras.get("num_output_tokens"))
    stats = f"[{chunks} chunks"
    if n_out is not None:
        stats += f", {n_out} tokens"
    if first is not None:
        stats += f", first text after {first * 1000:.0f} ms, done in {last * 1000:.0f} ms"
    click.echo(click.style(stats + "]", dim=True), err=True)


def _guide(guide_type: str | None, guide: str | None) -> str | None:
    """--guide's text (read from the file after "@"), checked against --guide-type."""
    if guide and guide.startswith("@"):
        from pathlib import Path

        try:
            guide = Path(guide[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--guide {guide}: {exc.strerror or exc}") from None
    if guide and not guide_type:
        raise UsageError("--guide needs --guide-type (json_schema, regex, ebnf_grammar, structural_tag)")
    if guide_type not in (None, "json") and not guide:
        raise UsageError(f"--guide-type {guide_type} needs --guide (the schema, pattern or grammar)")
    return guide


def _openai(prompt, url, server, model, max_tokens, chat, as_json, sampling) -> None:
    """--protocol openai: stream from an OpenAI-compatible server (a `tritongen dynamo up` graph by default)."""
    from ..clients import openai_client

    if not url:
        from ..runtime import state

        records = [r for r in state.find(server) if r.launcher == "dynamo"]
        if len(records) == 1:
            url, model = records[0].http_url, model or records[0].extra.get("model")
        else:
            url = "127.0.0.1:8000"
    if not model:
        raise UsageError("--protocol openai needs --model (the served model name) when no Dynamo graph is running")
    text, first, last, usage = [], None, 0.0, {}
    for d in openai_client.stream(url, model, prompt, max_tokens=max_tokens, chat=chat, **sampling):
        if d.text:
            first = d.at if first is None else first
            text.append(d.text)
            if not as_json:
                sys.stdout.write(d.text)
                sys.stdout.flush()
        last, usage = d.at, d.usage or usage
    if as_json:
        click.echo(json.dumps({"text": "".join(text), "elapsed_s": round(last, 4), "usage": usage,
                               "ttft_s": None if first is None else round(first, 4)}, ensure_ascii=False))
        return
    sys.stdout.write("\n")
    stats = f"[{usage.get('completion_tokens', '?')} tokens"
    if first is not None:
        stats += f", first text after {first * 1000:.0f} ms"
    click.echo(click.style(stats + f", done in {last * 1000:.0f} ms]", dim=True), err=True)
