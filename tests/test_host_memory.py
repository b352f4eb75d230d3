"""The huge-page re-exec of the command-line entry points."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybrik_jax import host_memory

GLIBC = (2, 36)


def test_adds_the_tunable_once():
  env = host_memory.huge_pages_environ({"PATH": "/bin"}, GLIBC, "madvise")
  assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
  # The re-executed process sees the tunable and goes on normally.
  assert host_memory.huge_pages_environ(env, GLIBC, "madvise") is None


def test_keeps_other_tunables():
  env = host_memory.huge_pages_environ(
    {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, GLIBC, "always"
  )
  assert env["GLIBC_TUNABLES"] == (
    "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
  )


@pytest.mark.parametrize(
  "environ,glibc,thp",
  [
    ({"HYBRIK_JAX_HUGEPAGES": "0"}, GLIBC, "madvise"),  # opted out
    ({"HYBRIK_JAX_HUGEPAGES": "off"}, GLIBC, "always"),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GLIBC, "madvise"),  # user's
    ({}, (2, 34), "madvise"),  # glibc without the tunable
    ({}, None, "madvise"),  # not glibc (musl, macOS)
    ({}, GLIBC, "never"),  # THP disabled in the kernel
    ({}, GLIBC, None),  # no THP sysfs entry
  ],
)
def test_does_nothing_where_it_does_not_apply(environ, glibc, thp):
  assert host_memory.huge_pages_environ(environ, glibc, thp) is None


def test_thp_mode_parses_sysfs(tmp_path):
  f = tmp_path / "enabled"
  f.write_text("always [madvise] never\n")
  assert host_memory.thp_mode(f) == "madvise"
  f.write_text("[always] madvise never\n")
  assert host_memory.thp_mode(f) == "always"
  assert host_memory.thp_mode(tmp_path / "missing") is None


def test_reexec_runs_the_same_command_with_the_tunable(tmp_path):
  script = tmp_path / "probe.py"
  script.write_text(
    "import os, sys\n"
    "from hybrik_jax import host_memory\n"
    "if __name__ == '__main__':\n"
    "  print('start', os.getpid(), flush=True)\n"
    "  host_memory.reexec_with_huge_pages()\n"
    "  print('args', sys.argv[1:])\n"
    "  print('tunables', os.environ.get('GLIBC_TUNABLES'))\n"
  )
  env = {
    k: v
    for k, v in os.environ.items()
    if k not in ("GLIBC_TUNABLES", "HYBRIK_JAX_HUGEPAGES")
  }
  env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
  proc = subprocess.run(
    [sys.executable, str(script), "--flag", "x y"],
    capture_output=True,
    text=True,
    env=env,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert "args ['--flag', 'x y']" in lines
  applies = (
    host_memory.glibc_version() is not None
    and host_memory.glibc_version() >= host_memory.MIN_GLIBC
    and host_memory.thp_mode() in ("always", "madvise")
  )
  if applies:
    # Printed twice by the same PID (exec keeps it), then the tunable is set.
    starts = [l for l in lines if l.startswith("start")]
    assert len(starts) == 2 and starts[0] == starts[1]
    assert "tunables glibc.malloc.hugetlb=1" in lines
  else:
    assert "tunables None" in lines
  # Opted out: runs once, unchanged.
  env["HYBRIK_JAX_HUGEPAGES"] = "0"
  proc = subprocess.run(
    [sys.executable, str(script)],
    capture_output=True,
    text=True,
    env=env,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  assert (
    len([l for l in proc.stdout.splitlines() if l.startswith("start")]) == 1
  )
  assert "tunables None" in proc.stdout.splitlines()
