"""A fake ``gs://`` file system on local disk, for tests without a network.

``python tests/scripts/fake_gcs.py ROOT ENTRY.py ARGS...`` runs an entry
point's ``main(ARGS)`` (``train.py``, ``evaluate.py``,
``convert_torch_weights.py``) with every ``gs://BUCKET/KEY`` path served from
``ROOT/BUCKET/KEY``:

* :mod:`etils.epath` (what hybrik-jax and orbax use for files and folders)
  through ``etils.epath.testing.mock_epath``;
* TensorStore, which orbax uses for the checkpoint arrays with its own GCS
  driver: orbax's kvstore spec for a GCS path becomes a ``file`` kvstore
  under ``ROOT``;
* the bucket is a plain (not hierarchical-namespace) bucket, so orbax never
  calls the GCS client library.

Code that bypasses epath (``open``, ``pathlib``, ``os``) sees a ``gs://``
path as the relative path ``gs:/BUCKET/KEY`` and writes under the current
directory instead, where a test can look for it.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from unittest import mock

_PREFIX = "gs://"


def _to_local(root: str, p) -> str:
  s = os.fspath(p)
  return os.path.join(root, s[len(_PREFIX) :]) if s.startswith(_PREFIX) else s


def _to_remote(root: str, p: str) -> str:
  rel = os.path.relpath(p, root)
  return p if rel.startswith("..") else _PREFIX + rel


@contextlib.contextmanager
def fake_gcs(root: str):
  """Serves ``gs://`` paths from the local folder ``root`` (see module doc)."""
  from etils.epath import testing
  from orbax.checkpoint._src.path import gcs_utils

  root = os.path.abspath(root)
  loc = lambda p: _to_local(root, p)  # noqa: E731

  def one(orig, p, *a, **k):
    return orig(loc(p), *a, **k)

  def two(orig, src, dst, *a, **k):
    return orig(loc(src), loc(dst), *a, **k)

  def glob(orig, pattern):
    return [_to_remote(root, p) for p in orig(loc(pattern))]

  def walk(orig, top, **k):
    for d, dirs, files in orig(loc(top), **k):
      yield _to_remote(root, os.fspath(d)), dirs, files

  def kvstore(ckpt_path):
    return {"driver": "file", "path": loc(ckpt_path)}

  with contextlib.ExitStack() as stack:
    stack.enter_context(
      testing.mock_epath(
        copy=two,
        exists=one,
        glob=glob,
        isdir=one,
        listdir=one,
        makedirs=one,
        mkdir=one,
        open=one,
        remove=one,
        rename=two,
        replace=two,
        rmtree=one,
        stat=one,
        walk=walk,
      )
    )
    stack.enter_context(
      mock.patch.object(gcs_utils, "get_kvstore_for_gcs", kvstore)
    )
    stack.enter_context(
      mock.patch.object(
        gcs_utils, "is_hierarchical_namespace_enabled", lambda p: False
      )
    )
    yield


def main() -> int:
  root, entry, *argv = sys.argv[1:]
  sys.path.insert(0, os.path.dirname(os.path.abspath(entry)))
  module = runpy.run_path(entry, run_name="fake_gcs_entry")
  with fake_gcs(root):
    return module["main"](argv)


if __name__ == "__main__":
  sys.exit(main())
