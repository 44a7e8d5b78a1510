"""An OpenAI-compatible HTTP API in front of a served tritongen repository (``tritongen openai``).

It talks to Triton over gRPC streaming (``ModelStreamInfer``) with the ensemble's client contract, which every
route serves under the model name ``ensemble``, so it works with any route and any launch mode, including
multi-GPU leader mode, where Triton's own OpenAI frontend does not (it needs TensorRT-LLM in-process).

Laid out as vLLM's entrypoints/openai is: ``protocol`` (OpenAI's bodies), ``mapping`` (OpenAI requests -> the
client contract, answers -> OpenAI's), ``backend`` (the Triton calls), ``serving`` (one request run to its
answer), ``asgi`` and ``app`` (the FastAPI app), ``launch`` (the server as a background process). Nothing is
imported here, so ``launch`` stays cheap.
"""
