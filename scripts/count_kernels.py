#!/usr/bin/env python
"""Kernels per time step of a compiled RNN step (`jaxseq.bench.kernels`; see scripts/README.md).

    .venv/bin/python scripts/count_kernels.py --model lstm --batch 16 --hidden 768 --seq-len 64 --mode train
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from jaxseq.bench.kernels import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
