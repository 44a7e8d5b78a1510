"""A ZMQ event broker on loopback for a local Dynamo graph: ``python -m tritongen.runtime.dynamo_broker XSUB XPUB``.

Dynamo 1.6.1's event publishers (KV events, load metrics) bind ``tcp://0.0.0.0`` in direct mode, whatever
``DYN_EVENT_PLANE_HOST`` says. With ``DYN_ZMQ_BROKER_URL`` they connect to a broker instead, and only the broker
listens: this one binds its two sockets on 127.0.0.1 and forwards every message (pyzmq's built-in proxy).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(a.isdigit() for a in argv):
        print("usage: python -m tritongen.runtime.dynamo_broker XSUB_PORT XPUB_PORT", file=sys.stderr)
        return 2
    import zmq

    ctx = zmq.Context()
    xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
    xsub.bind(f"tcp://127.0.0.1:{argv[0]}")
    xpub.bind(f"tcp://127.0.0.1:{argv[1]}")
    print(f"dynamo event broker: publishers -> 127.0.0.1:{argv[0]}, subscribers -> 127.0.0.1:{argv[1]}", flush=True)
    try:
        zmq.proxy(xsub, xpub)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
