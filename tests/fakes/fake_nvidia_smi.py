"""FAKE `nvidia-smi` for tritongen's tests: prints the GPUs listed in ``FAKE_GPUS`` (``;``-separated CSV rows
``index, name, compute_cap, memory_mb``) for ``--query-gpu=... --format=csv,noheader,nounits``; no GPU is touched."""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    if not any(a.startswith("--query-gpu") for a in argv):
        print("fake nvidia-smi: only --query-gpu is imitated", file=sys.stderr)
        return 2
    rows = [r.strip() for r in os.environ.get("FAKE_GPUS", "0, NVIDIA H100 80GB HBM3, 9.0, 81559").split(";")]
    for row in rows:
        if row:
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
