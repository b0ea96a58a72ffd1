"""Every ```python block of README.md runs as written, each in a fresh namespace.

A block that must not run is preceded by a line `<!-- no-test -->` (keep those to none: a snippet
that cannot run is one a reader cannot run either). New blocks are picked up automatically.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
NO_TEST = "<!-- no-test -->"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(first line number, code, skip) for each ```python block, in order."""
    blocks = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        blocks.append((line, m.group(1), before == NO_TEST))
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_extractor_finds_blocks_and_markers():
    text = ("x\n```python\na = 1\n```\n<!-- no-test -->\n```python\nraise SystemExit\n```\n"
            "```bash\nls\n```\n```python\nb = 2\nc = 3\n```\n")
    assert python_blocks(text) == [(2, "a = 1\n", False), (6, "raise SystemExit\n", True),
                                   (12, "b = 2\nc = 3\n", False)]
    assert len(BLOCKS) >= 2  # the "Using the library" section has two; docs/library.md the rest


@pytest.mark.parametrize("line, code, skip", BLOCKS, ids=[f"README.md:{b[0]}" for b in BLOCKS])
def test_readme_block_runs(line, code, skip):
    if skip:
        pytest.skip(f"marked {NO_TEST}")
    namespace = {"__name__": f"readme_block_{line}"}
    # Padded so that a traceback's line numbers are README.md's own.
    exec(compile("\n" * line + code, str(README), "exec"), namespace)
