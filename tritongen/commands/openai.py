"""``tritongen openai``: an OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions) in front of a
running Triton server, over gRPC streaming."""

from __future__ import annotations

import click

from ..errors import UsageError


def _resolve(triton_url: str | None, server: str | None):
    """(gRPC address, the tritongen ServerRecord or None): --triton as given, else the named / only server."""
    from ..clients.contract_io import split_url
    from ..runtime import state

    if triton_url:
        if server:
            raise UsageError("give --triton or --server, not both")
        address = split_url(triton_url)
        return triton_url, next((r for r in state.load_all() if r.grpc_url == address), None)
    from .infer import default_target

    url, _ = default_target(server, "grpc")
    return f"grpc://{url}", next((r for r in state.find(server) if r.grpc_url == url), None)


@click.command("openai")
@click.option("--triton", "triton_url", help="Triton gRPC address, e.g. grpc://127.0.0.1:8001 (default: the running "
              "tritongen server's).")
@click.option("--server", help="Name of a server started by `tritongen serve` (instead of --triton).")
@click.option("--model", "triton_model", help="Triton model that speaks the client contract (default: ensemble, "
              "with the served repository's model prefix; or tensorrt_llm_bls).")
@click.option("--model-name", help="Model id clients send and /v1/models lists (default: the tritongen server's "
              "name, else the Triton model's).")
@click.option("--stop-model", default="auto", show_default=True,
              help="Model that gets TensorRT-LLM `stop` requests for abandoned streams (auto: the repository's "
                   "tensorrt_llm; '' disables them).")
@click.option("--direct", is_flag=True, help="Tokenize and detokenize here and call the repository's tensorrt_llm "
              "model directly (no ensemble, no pre/postprocessing steps in Triton: less server CPU per token, the "
              "same text). Needs the served repository (--repo, or the --server's).")
@click.option("--repo", "repo_dir", type=click.Path(file_okay=False, path_type=str),
              help="The served repository, for --direct (default: the tritongen server's).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (0.0.0.0 exposes the API to the network; set an API key then).")
@click.option("--port", type=int, default=9000, show_default=True)
@click.option("--api-key", envvar="TRITONGEN_OPENAI_API_KEY",
              help="Require 'Authorization: Bearer KEY' on every request (env TRITONGEN_OPENAI_API_KEY, which keeps "
                   "the key out of the process list).")
@click.option("--default-max-tokens", type=int, default=256, show_default=True,
              help="max_tokens for chat requests that do not set it.")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds to wait for each response from Triton.")
@click.option("--max-body-bytes", type=int, default=8 * 2**20, show_default=True,
              help="Largest request body accepted; a bigger one gets a 413 error before it is parsed (0: no limit).")
@click.option("--tool-parser", type=click.Choice(["auto", "llama3_json", "hermes", "mistral", "none"]), default="auto",
              show_default=True, help="How tool calls are read from the model's text when a request gives tools (auto: "
              "from the served repository's model family; none: refuse tools).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True)
def command(triton_url, server, triton_model, model_name, stop_model, direct, repo_dir, host, port, api_key,
            default_max_tokens, timeout, max_body_bytes, tool_parser, log_level) -> None:
    """Serve an OpenAI-compatible API backed by Triton (any route, any launch mode).

    \b
    Examples:
      tritongen openai --triton grpc://127.0.0.1:8001
      TRITONGEN_OPENAI_API_KEY=secret tritongen openai --server tiny --port 9000
      tritongen openai --server tiny --direct     # tokenizer here, tensorrt_llm in Triton
      curl http://127.0.0.1:9000/v1/chat/completions -H 'Content-Type: application/json' \\
        -d '{"model": "tiny", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 32}'
    """
    if default_max_tokens < 1:
        raise UsageError("--default-max-tokens must be at least 1")
    url, owner = _resolve(triton_url, server)
    triton_model = triton_model or (owner.model_prefix if owner else "") + "ensemble"
    name = model_name or (owner.name if owner else None) or triton_model
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        click.echo(click.style(f"warning: listening on {host} without an API key: anyone on the network can use it "
                               "(set TRITONGEN_OPENAI_API_KEY)", fg="yellow"), err=True)
    prefix = ""
    if direct:
        repo_dir = repo_dir or (owner.repo if owner else None)
        if not repo_dir:
            raise UsageError("--direct needs the served repository: give --repo DIR (or --server NAME)")
        from ..clients.contract_io import companion

        prefix = companion(triton_model, "")  # "llama-ensemble" -> "llama-"
    elif repo_dir:
        raise UsageError("--repo is for --direct")
    from ..clients.openai.app import ServerConfig, serve
    from ..clients.openai.tools import parser_for_repo

    if tool_parser == "auto":
        tool_parser = parser_for_repo(repo_dir or owner.repo) if (repo_dir or owner) else None
    cfg = ServerConfig(triton_url=url, model_name=name, triton_model=triton_model, stop_model=stop_model or None,
                       api_key=api_key or None, default_max_tokens=default_max_tokens, timeout=timeout,
                       max_body_bytes=max_body_bytes, tool_parser=None if tool_parser == "none" else tool_parser,
                       direct_repo=repo_dir if direct else None, model_prefix=prefix)
    target = f"{prefix}tensorrt_llm (direct path, tokenizer of {repo_dir})" if direct else repr(triton_model)
    click.echo(f"OpenAI API on http://{host}:{port}/v1 (model {name!r}) -> Triton {url} model {target}"
               f"{', API key required' if api_key else ''}", err=True)
    serve(cfg, host=host, port=port, log_level=log_level)
