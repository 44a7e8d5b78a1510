"""What every route's templates share: the client contract of the repository and the parameters of the
preprocessing, postprocessing and tensorrt_llm_bls models (the llmapi front reuses them)."""

from __future__ import annotations

from .. import __version__, contract, versions
from ..errors import GatingError
from ..resolve import Deployment
from ..spec import Route
from . import lora
from .base import BaseRoute


def param_value(value: object) -> str:
    """Triton parameters are strings; booleans follow the backend's "true"/"false" convention."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def params(values: dict[str, object]) -> dict[str, str]:
    """A model's ``parameters`` as Triton takes them: every value a string (see :func:`param_value`)."""
    return {k: param_value(v) for k, v in values.items()}


def _tokenizer_parameters(spec) -> dict[str, object]:
    return {
        "tokenizer_dir": str(spec.tokenizer_dir),
        "trust_remote_code": spec.model.trust_remote_code,
    }


def tensor_contract(deployment: Deployment) -> dict:
    """The tensors and mappings of this repository, for the TensorRT-LLM release of its container.

    The engine route's tensorrt_llm model declares exactly what that release's backend reads and writes; the
    cpu engine declares the newest contract plus the old names (it is ours, and accepts both). The ensemble
    and tensorrt_llm_bls follow the release either way, so a cpu repository pinned to an old container wires
    its ensemble as the engine route would.
    """
    spec = deployment.spec
    image, trtllm = (None, None)
    if spec.route in (Route.engine, Route.cpu):
        image, trtllm = deployment.image, deployment.trtllm_version
    try:
        llm = contract.llm_contract(trtllm)
    except ValueError as exc:
        raise GatingError(f"container.image: {image}: {exc}") from None
    groups = spec.resolved_output_groups
    if spec.route is Route.llmapi:
        # The llmapi front has its own contract (tritongen.routes.llmapi); it is not the engine backend's.
        return {"trtllm_version": None, "llm_contract": llm, "groups": groups,
                "client_outputs": contract.client_outputs(groups),
                "passthrough_outputs": contract.passthrough_outputs(groups), "dropped_outputs": {}}
    missing = contract.unavailable_outputs(groups, trtllm)
    explicit = isinstance(spec.serving.optional_outputs, list)
    for group, names in missing.items():
        if explicit and set(names) == set(contract.OUTPUT_GROUPS[group]):
            raise GatingError(
                f"serving.optional_outputs: {group} ({', '.join(names)}) is not produced by the tensorrt_llm "
                f"backend of TensorRT-LLM {trtllm} ({image}; contract row {llm.row})",
                hint=f"drop {group} from serving.optional_outputs, or use a newer container.image")
    renamed = {n: llm.name(n) for n in contract.PASSTHROUGH_OUTPUTS}
    return {
        "trtllm_version": trtllm,
        "llm_contract": llm,
        "groups": groups,
        "llm_inputs": contract.cpu_llm_inputs() if spec.route is Route.cpu else llm.inputs,
        "llm_outputs": contract.LLM_OUTPUTS if spec.route is Route.cpu else llm.outputs,
        "client_inputs": contract.client_inputs_for(trtllm),
        "client_outputs": contract.client_outputs(groups, trtllm),
        "passthrough_outputs": contract.passthrough_outputs(groups, trtllm),
        #: tensorrt_llm output -> client output, for the outputs passed through
        "passthrough_map": {renamed[n]: n for n in contract.passthrough_outputs(groups, trtllm)},
        "pre_to_llm": contract.pre_to_llm_for(trtllm),
        "client_to_llm": contract.client_to_llm_for(trtllm),
        "client_to_pre": {c: p for c, p in contract.CLIENT_TO_PRE.items()},
        "llm_output_ids": llm.name("output_ids"),
        "llm_sequence_length": llm.name("sequence_length"),
        #: group -> outputs this release never produces, left out of the client contract
        "dropped_outputs": missing,
        #: the cpu engine's top-k tokens (contract.TOP_LOGPROBS_OUTPUTS), carried with the log_probs outputs
        "top_logprobs": spec.route is Route.cpu and any(str(getattr(g, "value", g)) == "log_probs" for g in groups),
    }


def _llm_names(llm: contract.LLMContract) -> str:
    """For tensorrt_llm_bls: "contract name=this release's name" for each input it names differently, with
    nothing after "=" for those the release lacks ("seed=random_seed,return_num_input_tokens=")."""
    fed = sorted(set(contract.PRE_TO_LLM.values()) | set(contract.CLIENT_TO_LLM.values()))
    return ",".join(f"{n}={llm.name(n) or ''}" for n in fed if llm.name(n) != n)


def context(deployment: Deployment, llm_params: dict[str, str]) -> dict:
    """Everything a template of the shared models may use. StrictUndefined turns any other name into an error."""
    spec = deployment.spec
    sv = spec.serving
    tensors = tensor_contract(deployment)
    pre = {
        **_tokenizer_parameters(spec),
        "add_special_tokens": sv.add_special_tokens,
        "max_input_len": spec.limits.max_input_len,
        "max_seq_len": spec.limits.max_seq_len,
        "max_prompt_bytes": sv.max_prompt_bytes,
    }
    post = {
        **_tokenizer_parameters(spec),
        "skip_special_tokens": sv.skip_special_tokens,
        "streaming": sv.streaming,
    }
    bls = {
        **_tokenizer_parameters(spec),
        "add_special_tokens": sv.add_special_tokens,
        "skip_special_tokens": sv.skip_special_tokens,
        "max_input_len": spec.limits.max_input_len,
        "max_seq_len": spec.limits.max_seq_len,
        "max_prompt_bytes": sv.max_prompt_bytes,
        "preprocessing_model": spec.model_names["preprocessing"],
        "llm_model": spec.model_names["tensorrt_llm"],
        "draft_model": spec.model_names["tensorrt_llm_draft"]
        if spec.decoding.speculative.method.value == "draft_target" else "",
        "num_draft_tokens": spec.resolved_max_draft_len,
        "llm_names": _llm_names(tensors["llm_contract"]) if spec.route is not Route.llmapi else "",
    }
    ctx = {
        "spec": spec,
        "names": spec.model_names,
        "llm_name": spec.model_names["tensorrt_llm"],
        "version": __version__,
        "contract": contract,
        # The client contract of this repository (ensemble, tensorrt_llm_bls, llmapi front): serving.optional_outputs,
        # and the tensorrt_llm contract of the container's TensorRT-LLM release.
        **tensors,
        "logits_dtype": sv.logits_dtype.value,
        "pre_params": params(pre),
        "post_params": params(post),
        "bls_params": params(bls),
        "llm_params": llm_params,
    }
    lora.extend_context(spec, ctx)
    return ctx


class EnsembleRoute(BaseRoute):
    """A route whose repository is the ensemble (preprocessing -> tensorrt_llm -> postprocessing, optional BLS)
    around its own tensorrt_llm model: engine and cpu. Subclasses say how tensorrt_llm is parameterised."""

    def llm_parameters(self, deployment: Deployment) -> dict[str, str]:
        """The tensorrt_llm model's ``parameters``."""
        raise NotImplementedError

    def check(self, deployment: Deployment) -> None:
        versions.check_image_supports(deployment.image, self.name)

    def conditions(self, deployment: Deployment) -> dict[str, bool]:
        return {"bls": deployment.spec.serving.bls, "draft_target": deployment.draft_target}

    def context(self, deployment: Deployment) -> dict:
        return context(deployment, self.llm_parameters(deployment))

    def draft_context(self, deployment: Deployment) -> dict:
        """The context of the ``tensorrt_llm_draft`` model: the draft model's, under the target's names."""
        names = deployment.names
        return {**self.context(deployment.draft), "names": names, "llm_name": names["tensorrt_llm_draft"]}
