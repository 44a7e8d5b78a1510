"""The tensorrt_llm contract per TensorRT-LLM release: which row a version falls in, and what it renames."""

from __future__ import annotations

import pytest

from tritongen import contract, versions


@pytest.mark.parametrize("version, row", [
    ("0.10.0", "0.10"), ("0.17.0.post1", ">=0.16,<0.19"), ("0.19.0", "0.19"), ("0.20.0", ">=0.20,<1.0"),
    ("1.0.3.2510", ">=1.0"), ("1.2.1", ">=1.0"),
])
def test_container_build_strings_fall_in_their_release_row(version, row):
    assert contract.llm_contract(version).row == row


def test_every_known_container_has_a_contract_and_the_generations_split_at_0_20():
    for c in versions.containers():
        names = {t.name for t in contract.llm_inputs(c.trtllm)}
        old = tuple(int(x) for x in c.trtllm.split(".")[:2]) < (0, 20)
        assert ({"random_seed", "min_length"} <= names) is old, c.tag
        assert ({"seed", "min_tokens"} <= names) is not old, c.tag


def test_a_release_older_than_the_data_is_refused():
    with pytest.raises(ValueError, match="TensorRT-LLM 0.9.0 is older than any contract tritongen knows"):
        contract.llm_contract("0.9.0")


def test_the_kv_cache_flag_of_0_16_to_0_18_keeps_the_clients_name():
    """0.16-0.18 read return_kv_cache_reuse_stats for the KV-cache figures; the client still says
    return_perf_metrics, and the timing outputs that arrive in 0.19 are not promised."""
    c = contract.llm_contract("0.18.2")
    assert contract.client_to_llm_for("0.18.2")["return_perf_metrics"] == "return_kv_cache_reuse_stats"
    assert "return_perf_metrics" not in c.input_names
    assert contract.passthrough_outputs(["perf_metrics"], "0.18.2") == (
        "kv_cache_alloc_new_blocks", "kv_cache_reused_blocks", "kv_cache_alloc_total_blocks")
