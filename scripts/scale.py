#!/usr/bin/env python
"""Same as `jaxseq scale` (see scripts/README.md); arguments are passed through."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from jaxseq.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["scale", *sys.argv[1:]]))
