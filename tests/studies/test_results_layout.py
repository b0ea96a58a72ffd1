"""One layout for results: every committed folder follows `profiles/<machine>/<study>/[<preset>/]`, and
every committed report regenerates byte-identical from its records (regenerated in a copy of
profiles/, so the checkout is never written)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jaxseq.studies import STUDIES
from jaxseq.studies.base import REPO_PROFILES, folder_name, reference_folders, study_root
from jaxseq.studies.results import regenerate, study_folders

FOLDERS = study_folders(REPO_PROFILES)


def test_every_committed_result_sits_in_a_study_folder():
    studies = {s.folder for s in STUDIES}
    for machine in (p for p in REPO_PROFILES.iterdir() if p.is_dir()):
        for child in machine.iterdir():
            assert child.name in studies | {"VERDICT.md"}, child
    assert {f.spec.name for f in FOLDERS} >= {"scaling", "longrange", "translation", "charlm", "forecasting"}
    assert not list(REPO_PROFILES.rglob("cache")), "input caches live outside profiles/"


def test_reference_folders_follow_the_rule(tmp_path):
    root = tmp_path / "profiles"
    for m in ("a", "b", "c"):
        (root / m / "longrange" / "full").mkdir(parents=True)
    (root / "c" / "scaling").mkdir()
    here = root / "a" / "longrange" / "full"
    assert study_root(here, "longrange") == (root.resolve(), (root / "a").resolve(), Path("full"))
    assert reference_folders(here, "longrange") == [(root / m / "longrange" / "full").resolve() for m in "bc"]
    assert reference_folders(root / "c" / "scaling", "scaling") == []
    assert folder_name(here, "longrange") == "a/longrange/full"
    assert study_root(tmp_path / "elsewhere", "longrange") is None


@pytest.fixture(scope="module")
def profiles_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("regen") / "profiles"
    shutil.copytree(REPO_PROFILES, root, ignore=shutil.ignore_patterns("traces"))
    # The scaling report reads its traces: link them rather than copy.
    for trace in REPO_PROFILES.glob("*/scaling/traces"):
        (root / trace.relative_to(REPO_PROFILES)).symlink_to(trace, target_is_directory=True)
    return root


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f"{f.machine}/{f.spec.folder}/{f.preset}".rstrip("/"))
def test_committed_report_regenerates_identically(folder, profiles_copy):
    copy = next(f for f in study_folders(profiles_copy) if (f.machine, f.spec.name, f.preset)
                == (folder.machine, folder.spec.name, folder.preset))
    written = regenerate(copy)
    assert written.name == folder.spec.report
    assert written.read_text() == folder.report.read_text(), f"{folder.report} is stale: rerun its report"
