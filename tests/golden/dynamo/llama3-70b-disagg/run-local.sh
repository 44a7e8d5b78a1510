#!/usr/bin/env bash
# The graph on one host: frontend + TRT-LLM workers.
# Written by tritongen dynamo render for llama3-70b (disaggregated 1 prefill : 1 decode, router kv); Dynamo 1.6.1.
# Needs ai-dynamo[trtllm]==1.6.1 (or the runtime image) and the GPUs.
# Every Dynamo address is on loopback; events go through a ZMQ broker on loopback because the event
# publishers would otherwise bind 0.0.0.0.
set -euo pipefail
cd "$(dirname "$0")"
# Ctrl-C (or any exit) stops the whole graph, not just this script.
trap 'kill 0' EXIT INT TERM
export DYN_FILE_KV="${DYN_FILE_KV:-$PWD/.discovery}"
export DYN_ZMQ_BROKER_URL="${DYN_ZMQ_BROKER_URL:-xsub=tcp://127.0.0.1:5601,xpub=tcp://127.0.0.1:5602}"
export DYN_TCP_RPC_HOST=127.0.0.1
export DYN_TCP_RESPONSE_STREAM_HOST=127.0.0.1
export DYN_EVENT_PLANE_HOST=127.0.0.1
export DYN_SYSTEM_HOST=127.0.0.1
export DYN_HTTP_HOST=127.0.0.1
export DYN_HTTP_RPC_HOST=127.0.0.1
python3 -c 'import zmq; c = zmq.Context(); s = c.socket(zmq.XSUB); s.bind("tcp://127.0.0.1:5601"); p = c.socket(zmq.XPUB); p.bind("tcp://127.0.0.1:5602"); zmq.proxy(s, p)' &
python3 -m dynamo.frontend --router-mode kv --http-host 127.0.0.1 --http-port 8000 --discovery-backend file --request-plane tcp --event-plane zmq --enforce-disagg &
CUDA_VISIBLE_DEVICES=0,1,2,3 python3 -m dynamo.trtllm --model-path meta-llama/Llama-3.1-70B-Instruct --served-model-name llama3-70b --extra-engine-args engine-prefill.yaml --disaggregation-mode prefill --publish-kv-events --discovery-backend file --request-plane tcp --event-plane zmq &
CUDA_VISIBLE_DEVICES=4,5,6,7 python3 -m dynamo.trtllm --model-path meta-llama/Llama-3.1-70B-Instruct --served-model-name llama3-70b --extra-engine-args engine-decode.yaml --disaggregation-mode decode --discovery-backend file --request-plane tcp --event-plane zmq &
wait
