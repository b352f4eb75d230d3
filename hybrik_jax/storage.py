"""Paths that may be local or remote (``gs://bucket/...``): one entry to
:mod:`etils.epath`.

Every file the trainer, the evaluator and the converter read or write goes
through :func:`path` / :func:`open_file`, so a workdir, a checkpoint or a
HumanData file on a bucket works wherever the epath backend does (``gs://``
needs ``gcsfs``: ``pip install -e .[gcs]``; on TPU VMs TensorFlow's
``tf.io.gfile`` also serves). Orbax writes checkpoint arrays through
TensorStore's own GCS driver, not through epath.

Local paths are made absolute (orbax requires it) and behave exactly as with
:mod:`pathlib`. Two things object stores cannot do are handled here:

* appending to a file: :class:`MirroredFile` keeps a local copy, appends to
  it and uploads the whole file (remote only; local files are appended to in
  place);
* writing through a library that only knows local files (tensorboardX,
  matplotlib, ``np.savez``): :func:`upload_dir` copies a local staging folder
  up, and :func:`write_bytes` takes an in-memory buffer.
"""

from __future__ import annotations

import os
import re
from typing import IO, Any

from etils import epath

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_remote(p: Any) -> bool:
  """Whether ``p`` is a URL-style path (``gs://…``, ``s3://…``)."""
  return bool(_SCHEME.match(os.fspath(p) if not isinstance(p, str) else p))


def path(p: Any) -> epath.Path:
  """``p`` as an :class:`etils.epath.Path`; local paths made absolute
  (``~`` expanded)."""
  s = os.fspath(p)
  if is_remote(s):
    return epath.Path(s)
  return epath.Path(os.path.abspath(os.path.expanduser(s)))


def open_file(p: Any, mode: str = "rb") -> IO[Any]:
  """Opens a local or remote file (``FileNotFoundError`` when missing)."""
  return path(p).open(mode)


def write_bytes(p: Any, data: bytes) -> None:
  """Writes ``data`` to ``p`` (local or remote), replacing it."""
  with path(p).open("wb") as f:
    f.write(data)


def upload_dir(local_dir: str | os.PathLike, dest: Any) -> None:
  """Copies every file under ``local_dir`` to the same relative place under
  ``dest`` (replacing files that exist there)."""
  dest = path(dest)
  for root, _, files in os.walk(local_dir):
    rel = os.path.relpath(root, local_dir)
    target = dest if rel == "." else dest / rel
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
      with open(os.path.join(root, name), "rb") as f:
        write_bytes(target / name, f.read())


class MirroredFile:
  """An append-only text file (e.g. ``history.jsonl``) that works on object
  stores.

  Local ``p``: appended to in place and flushed after every
  :meth:`append`. Remote ``p``: its existing content is read once, lines are
  appended to an in-memory copy, and the whole file is uploaded on
  :meth:`sync` (call it at a cadence that suits the store) and on
  :meth:`close`.
  """

  def __init__(self, p: Any):
    self.path = path(p)
    self.remote = is_remote(self.path)
    self._dirty = False
    if self.remote:
      self._text = self.path.read_text() if self.path.exists() else ""
      self._fh = None
    else:
      self._fh = open(os.fspath(self.path), "a")

  def append(self, text: str) -> None:
    if self.remote:
      self._text += text
      self._dirty = True
    else:
      self._fh.write(text)
      self._fh.flush()

  def sync(self) -> None:
    if self.remote and self._dirty:
      self.path.write_text(self._text)
      self._dirty = False

  def close(self) -> None:
    self.sync()
    if self._fh is not None:
      self._fh.close()
      self._fh = None
