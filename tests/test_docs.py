"""Every ```python block of docs/*.md runs as written, each in a fresh namespace, and the pages' links hold.

The blocks are found by `python_blocks` of tests/test_readme.py (a block preceded by `<!-- no-test -->` is
skipped; keep those to none). Relative Markdown links in docs/*.md and in the study READMEs under profiles/
must point to files that exist, and no page cites a file outside the repository.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_readme import NO_TEST, python_blocks  # noqa: E402  (tests/ is not a package)

DOCS = sorted((ROOT / "docs").glob("*.md"))
STUDY_READMES = [ROOT / "profiles" / p / "README.md" for p in (
    "cpu-2core/scaling", "cpu-2core/forecast", "cpu-amd-epyc-2core/scaling",
    "cpu-amd-epyc-2core/longrange", "cpu-amd-epyc-2core/translation", "gpu-nvidia-h200x1/scaling")]
BLOCKS = [(doc, line, code, skip) for doc in DOCS
          for line, code, skip in python_blocks(doc.read_text(encoding="utf-8"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_pages_exist():
    names = {d.name for d in DOCS}
    assert {"library.md", "lstm-on-cpu.md", "huge-pages.md", "commands.md"} <= names
    assert all(p.is_file() for p in STUDY_READMES)
    assert len(BLOCKS) >= 8  # docs/library.md alone has eight


@pytest.mark.parametrize("doc, line, code, skip", BLOCKS,
                         ids=[f"{b[0].name}:{b[1]}" for b in BLOCKS])
def test_docs_block_runs(doc, line, code, skip):
    if skip:
        pytest.skip(f"marked {NO_TEST}")
    namespace = {"__name__": f"docs_block_{doc.stem}_{line}"}
    # Padded so that a traceback's line numbers are the page's own.
    exec(compile("\n" * line + code, str(doc), "exec"), namespace)


@pytest.mark.parametrize("page", DOCS + STUDY_READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(page):
    text = page.read_text(encoding="utf-8")
    assert "KNOWLEDGE" + ".md" not in text  # a notes file outside the project: never cited (spelled apart here)
    missing = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s):, mailto:, in-page anchors
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files: {missing}"
