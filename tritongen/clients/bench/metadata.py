"""What a result records about the run: the spec, the server's model configs, versions, the git revision."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from ..contract_io import companion, split_url
from .config import BenchConfig


def collect_metadata(config: BenchConfig, *, http_url: str | None = None) -> dict[str, Any]:
    """Spec (from the repository's lock file, else the server's model configs), versions and git revision."""
    from importlib import metadata as md

    from ... import __version__

    meta: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "target": {"url": config.url, "protocol": config.protocol, "model": config.model},
        "versions": {"tritongen": __version__, "python": platform.python_version(),
                     "platform": platform.platform()},
        "git_revision": git_revision(),
        "spec": None, "spec_source": None, "server": None, "tokenizer_dir": None,
    }
    for dist in ("tritonclient", "grpcio", "aiohttp"):
        try:
            meta["versions"][dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    configs = _server_configs(config, http_url)
    if configs.get("server"):
        meta["server"] = configs["server"]
        meta["versions"]["tritonserver"] = configs["server"].get("version")
    lock = None
    if config.repo:
        from ...repo.lock import read_lock

        lock = read_lock(Path(config.repo))
    if lock and isinstance(lock.get("spec"), dict):
        meta["spec"] = lock["spec"]
        meta["spec_source"] = f"{Path(config.repo) / 'tritongen.lock.yaml'}"
        # What the spec targets (the NGC image for the GPU host), not necessarily what served this run.
        meta["spec_container"] = lock.get("container")
        model = lock["spec"].get("model") or {}
        tok = model.get("tokenizer_dir") or model.get("checkpoint_dir")
        if tok and Path(tok).is_dir():
            meta["tokenizer_dir"] = str(tok)
    elif configs.get("models"):
        meta["spec"] = {"model_configs": configs["models"]}
        meta["spec_source"] = "server model configuration"
    models = configs.get("models") or {}
    # Whichever served model knows the tokenizer: preprocessing (engine/cpu routes), the target itself (the
    # llmapi route's front), or tensorrt_llm.
    for name in (companion(config.model, "preprocessing"), config.model, companion(config.model)):
        if meta["tokenizer_dir"] is not None:
            break
        params = (models.get(name) or {}).get("parameters") or {}
        tok = (params.get("tokenizer_dir") or {}).get("string_value")
        if tok and Path(tok).is_dir():
            meta["tokenizer_dir"] = tok
    target = models.get(config.model) or {}
    meta["model_inputs"] = [i.get("name") for i in target.get("input") or []] or None
    return meta


def _server_configs(config: BenchConfig, http_url: str | None) -> dict[str, Any]:
    """Server metadata and the model configs of the target model and its usual companions ({} when
    unreachable: metadata must never fail a benchmark)."""
    names = [config.model] + [n for n in (companion(config.model, role) for role in
                                          ("preprocessing", "tensorrt_llm", "postprocessing")) if n != config.model]
    out: dict[str, Any] = {"models": {}}
    try:
        if config.protocol == "http" or http_url:
            import urllib.request

            base = f"http://{split_url(http_url or config.url, 8000)}"

            def get(path):
                with urllib.request.urlopen(base + path, timeout=5) as resp:
                    return json.loads(resp.read())

            out["server"] = {k: v for k, v in get("/v2").items() if k in ("name", "version")}
            for name in names:
                try:
                    out["models"][name] = get(f"/v2/models/{name}/config")
                except Exception:  # noqa: BLE001 - a missing companion model is fine
                    continue
        else:
            import tritonclient.grpc as grpcclient

            client = grpcclient.InferenceServerClient(split_url(config.url, 8001))
            try:
                server = client.get_server_metadata(as_json=True, headers=config.headers)
                out["server"] = {"name": server.get("name"), "version": server.get("version")}
                for name in names:
                    try:
                        out["models"][name] = client.get_model_config(name, as_json=True,
                                                                      headers=config.headers).get("config")
                    except Exception:  # noqa: BLE001
                        continue
            finally:
                client.close()
    except Exception:  # noqa: BLE001 - unreachable server: the readiness check reports it
        return {}
    return out


def git_revision() -> str | None:
    """The git commit of the tritongen source tree (with '-dirty' when it has local changes), if any."""
    from ... import proc
    from ...errors import MissingDependency as Missing

    here = Path(__file__).resolve().parent
    try:
        rc, out = proc.run(["git", "-C", str(here), "rev-parse", "HEAD"], check=False, tail_lines=2)
        if rc != 0:
            return None
        rev = out.strip().splitlines()[-1]
        rc, status = proc.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                              check=False, tail_lines=1)
        return rev + ("-dirty" if rc == 0 and status.strip() else "")
    except Missing:
        return None
