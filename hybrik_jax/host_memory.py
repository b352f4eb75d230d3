"""Transparent huge pages for XLA:CPU's host buffers (a Linux/glibc setting).

XLA:CPU allocates the temporaries of every executed program with ``malloc``,
and glibc serves large requests with fresh ``mmap`` pages. Each call then
page-faults on all of its scratch memory: ~420,000 minor faults per batch-8
training step (about 1.6 GB of first touches) and ~8,500 per batch-1
inference, which costs roughly 10% of the step on the 2-core benchmark
machine (BENCHMARKS.md). glibc >= 2.35 can back its allocations with
transparent huge pages (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, honoured
when the kernel's THP mode is ``always`` or ``madvise``): the same work then
takes ~300 / ~4,000 faults.

glibc reads tunables only when a process starts, so the command-line entry
points (``train.py``, ``evaluate.py``, ``demo.py``, ``bench/``) call
:func:`reexec_with_huge_pages` first thing under ``__main__``: it re-executes
the same command once with the tunable added. It never runs on import, does
nothing where it does not apply, and ``HYBRIK_JAX_HUGEPAGES=0`` turns it off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT_ENV = "HYBRIK_JAX_HUGEPAGES"
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")
MIN_GLIBC = (2, 35)  # first release with glibc.malloc.hugetlb


def glibc_version() -> tuple[int, int] | None:
  """(major, minor) of the running glibc, or None (not glibc / not Linux)."""
  try:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # 'glibc 2.36'
  except (AttributeError, ValueError, OSError):
    return None
  if name != "glibc":
    return None
  try:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)
  except ValueError:
    return None


def thp_mode(path: Path = THP_ENABLED) -> str | None:
  """The kernel's THP mode ('always' | 'madvise' | 'never'), None if unknown."""
  try:
    text = path.read_text()
  except OSError:
    return None
  if "[" not in text:
    return None
  return text[text.index("[") + 1 : text.index("]")]


def huge_pages_environ(
  environ: Mapping[str, str], glibc: tuple[int, int] | None, thp: str | None
) -> dict[str, str] | None:
  """The environment to re-execute with, or None when no re-exec is due.

  Pure function of its inputs (tested without exec'ing anything).
  """
  if environ.get(OPT_OUT_ENV, "1").strip().lower() in (
    "0",
    "false",
    "no",
    "off",
  ):
    return None
  if glibc is None or glibc < MIN_GLIBC or thp not in ("always", "madvise"):
    return None
  current = environ.get("GLIBC_TUNABLES", "")
  if "glibc.malloc.hugetlb" in current:
    return None  # already set (by us on the first exec, or by the user)
  env = dict(environ)
  env["GLIBC_TUNABLES"] = f"{current}:{TUNABLE}" if current else TUNABLE
  return env


def reexec_with_huge_pages() -> None:
  """Re-executes this command once with glibc huge-page malloc, if it applies.

  Call it at the top of a script's ``if __name__ == "__main__":`` block,
  before anything is printed or spawned. Returns normally (and does nothing)
  when the tunable is already set, opted out (``HYBRIK_JAX_HUGEPAGES=0``),
  or not supported (not Linux/glibc >= 2.35, THP ``never``).
  """
  env = huge_pages_environ(os.environ, glibc_version(), thp_mode())
  if env is None:
    return
  argv = list(getattr(sys, "orig_argv", sys.argv))
  sys.stdout.flush()
  sys.stderr.flush()
  # argv[0] -> the interpreter's path, so a virtualenv stays active.
  os.execve(sys.executable, [sys.executable] + argv[1:], env)
