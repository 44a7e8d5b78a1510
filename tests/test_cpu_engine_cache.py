"""The cpu engine's PyTorch forward uses transformers' Cache API: no deprecation on any step, same tokens as
generate()."""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings

import pytest

from conftest import REPO_ROOT

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _cpu_model_module(monkeypatch):
    fake = types.ModuleType("triton_python_backend_utils")
    fake.TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    monkeypatch.syspath_prepend(str(REPO_ROOT / "templates/common/lib"))
    monkeypatch.syspath_prepend(str(REPO_ROOT / "templates/cpu/tensorrt_llm/1"))  # engines.py, guided.py and lora.py, next to model.py
    spec = importlib.util.spec_from_file_location("cpu_engine_model", REPO_ROOT / "templates/cpu/tensorrt_llm/1/model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = transformers.LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt")
    transformers.LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def test_cache_steps_warn_nothing_and_match_generate(checkpoint, monkeypatch, capfd):
    module = _cpu_model_module(monkeypatch)
    engine = module.TorchEngine(str(checkpoint), "cpu", "float32", False, threads=1)
    seq = types.SimpleNamespace(prompt=[5, 17, 33, 2], cache=None, next_logits=None, lora=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning/DeprecationWarning fails the test
        engine.prefill(seq)
        tokens = []
        for _ in range(6):
            token = int(torch.argmax(seq.next_logits))
            tokens.append(token)
            engine.step(seq, token)
    assert "deprecated" not in capfd.readouterr().err
    assert isinstance(seq.cache, transformers.Cache) and seq.cache.get_seq_length() == len(seq.prompt) + 6
    with torch.inference_mode():
        want = engine.model.generate(torch.tensor([seq.prompt]), max_new_tokens=6, do_sample=False,
                                     pad_token_id=0)[0, len(seq.prompt):].tolist()
    assert tokens == want
