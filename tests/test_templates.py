"""The Python that ships inside rendered repositories: self-contained, and in step with tritongen's contract."""

from __future__ import annotations

import ast
import importlib.util
import sys
import types

import pytest

from conftest import REPO_ROOT
from tritongen import contract, versions

MODEL_FILES = sorted((REPO_ROOT / "templates").rglob("*.py"))
# What the stock NGC TensorRT-LLM container provides, plus each model's sibling helper modules.
ALLOWED = {"numpy", "torch", "transformers", "triton_python_backend_utils", "textcodec", "contract_tables",
           "llm_metrics", "topk", "guided", "llmapi_guided", "engines", "lora_names", "lora", "lora_request",
           # TensorRT-LLM itself, and xgrammar, which it depends on (structured output: imported on first use)
           "tensorrt_llm", "xgrammar",
           # the cpu engine's LoRA (lora.py): TensorRT-LLM lists peft in its requirements.txt (@000867d9, 1.2 era)
           "peft"}


def _top_level_imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT / "templates")))
def test_model_files_import_only_what_the_container_has(path):
    foreign = {m for m in _top_level_imports(path) - ALLOWED if m not in sys.stdlib_module_names}
    assert not foreign, f"{path.name} imports {sorted(foreign)}: rendered repositories must not need tritongen"


def test_no_model_file_imports_tritongen():
    for path in MODEL_FILES:
        assert "tritongen" not in _top_level_imports(path), path


def _load_template_module(relpath: str, monkeypatch, tmp_path):
    """Import a template model.py with a stand-in for triton_python_backend_utils (only constants are read at
    import time), and its sibling textcodec and rendered contract_tables on the path."""
    from tritongen.render import environment

    fake = types.ModuleType("triton_python_backend_utils")
    fake.TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    monkeypatch.delitem(sys.modules, "contract_tables", raising=False)
    tables = environment().get_template("common/lib/contract_tables.py.j2").render(contract=contract)
    (tmp_path / "contract_tables.py").write_text(tables)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(REPO_ROOT / "templates/common/lib"))
    spec = importlib.util.spec_from_file_location("template_model", REPO_ROOT / "templates" / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bls_mappings_equal_the_contract(monkeypatch, tmp_path):
    bls = _load_template_module("common/tensorrt_llm_bls/1/model.py", monkeypatch, tmp_path)
    assert bls.CLIENT_TO_PRE == contract.CLIENT_TO_PRE
    assert bls.PRE_TO_LLM == contract.PRE_TO_LLM
    assert bls.CLIENT_TO_LLM == contract.CLIENT_TO_LLM
    assert tuple(bls.PASSTHROUGH) == contract.PASSTHROUGH_OUTPUTS


@pytest.mark.parametrize("trtllm", sorted({c.trtllm for c in versions.containers()}))
def test_contract_maps_name_real_tensors(trtllm):
    """For the TensorRT-LLM release of every known container, each mapping names tensors that exist."""
    llm_in = {t.name for t in contract.llm_inputs(trtllm)}
    client_in = {t.name for t in contract.client_inputs_for(trtllm)}
    pre_in = {t.name for t in contract.PRE_INPUTS}
    pre_out = {t.name for t in contract.PRE_OUTPUTS}
    to_llm, pre_to_llm = contract.client_to_llm_for(trtllm), contract.pre_to_llm_for(trtllm)
    assert set(to_llm) <= client_in and set(to_llm.values()) <= llm_in
    assert set(contract.CLIENT_TO_PRE) <= client_in and set(contract.CLIENT_TO_PRE.values()) <= pre_in
    assert set(pre_to_llm) <= pre_out and set(pre_to_llm.values()) <= llm_in
    # Every client input is consumed somewhere; the old names and the new reach tensorrt_llm through the same
    # preprocessing output, in the name this release reads.
    assert client_in == set(to_llm) | set(contract.CLIENT_TO_PRE)
    seed = "random_seed" if contract.llm_contract(trtllm).renames.get("seed") else "seed"
    assert pre_to_llm["OUT_SEED"] == seed and seed in llm_in and ({"seed", "random_seed"} - {seed}).isdisjoint(llm_in)
