"""The `jaxseq` console script re-executes once with glibc's huge-page tunable (jaxseq.cli.hugepage_env)."""
import os
import subprocess
import sys

import pytest

from jaxseq.cli import HUGEPAGE_TUNABLE, hugepage_env

GLIBC = ("glibc", "2.36")


def test_sets_the_tunable_once_and_keeps_the_rest_of_the_environment():
    env = hugepage_env({"PATH": "/bin"}, system="Linux", libc=GLIBC)
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": HUGEPAGE_TUNABLE, "JAXSEQ_REEXEC": "1"}
    assert hugepage_env(env, system="Linux", libc=GLIBC) is None  # the re-executed process goes on
    other = hugepage_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, system="Linux", libc=GLIBC)
    assert other["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{HUGEPAGE_TUNABLE}"


@pytest.mark.parametrize("environ,system,libc", [
    ({}, "Darwin", ("", "")),                                   # not Linux
    ({}, "Linux", ("musl", "1.2")),                             # not glibc
    ({}, "Linux", ("glibc", "2.31")),                           # glibc without the tunable
    ({}, "Linux", ("glibc", "")),                               # unknown version
    ({"JAXSEQ_HUGEPAGES": "0"}, "Linux", GLIBC),                # the user said no
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "Linux", GLIBC),  # the user chose a value
])
def test_leaves_the_process_alone(environ, system, libc):
    assert hugepage_env(environ, system=system, libc=libc) is None


def test_entry_re_executes_the_module_with_that_environment(monkeypatch):
    from jaxseq import cli

    calls = []

    def fake_execve(path, args, env):
        calls.append((path, args, env))
        raise OSError("not allowed here")  # then entry() runs main() as started

    monkeypatch.setattr(cli, "hugepage_env", lambda environ: {"GLIBC_TUNABLES": HUGEPAGE_TUNABLE})
    monkeypatch.setattr(cli.os, "execve", fake_execve)
    monkeypatch.setattr(cli, "main", lambda: 7)
    monkeypatch.setattr(sys, "argv", ["jaxseq", "translate", "study"])
    with pytest.raises(SystemExit) as stop:
        cli.entry()
    assert stop.value.code == 7
    assert calls == [(sys.executable, [sys.executable, "-m", "jaxseq.cli", "translate", "study"],
                      {"GLIBC_TUNABLES": HUGEPAGE_TUNABLE})]


def test_the_console_script_end_to_end():
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "JAXSEQ_REEXEC", "JAXSEQ_HUGEPAGES")}
    code = "import sys; from jaxseq import cli; sys.argv = ['jaxseq', '--help']; cli.entry()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "usage: jaxseq" in out.stdout, out.stderr[-2000:]
