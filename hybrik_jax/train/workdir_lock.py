"""One trainer per workdir: a lock file held for the life of a run.

``<workdir>/train.lock`` records the holder (host, pid, start time). It is
created atomically on a local file system (``O_EXCL``) and removed when the
run ends, however it ends short of ``kill -9``. A lock left by a process that
no longer runs on this host (killed, crashed machine rebooted) is stale: it
is taken over with a message. A lock held by a live process, or by another
host (whose processes cannot be checked from here), is refused with a
:class:`~hybrik_jax.errors.WorkdirLockedError` that says how to clear it.

In a multi-process run only process 0 takes the lock: the other processes
are the same run.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from hybrik_jax import errors, storage

LOCK_NAME = "train.lock"


def _alive(pid: int) -> bool:
  """Whether process ``pid`` runs on this host."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # exists, owned by another user
  return True


class WorkdirLock:
  """``with WorkdirLock(workdir, say): ...`` holds the workdir's lock."""

  def __init__(self, workdir: Any, say=print):
    self.path = storage.path(workdir) / LOCK_NAME
    self._say = say
    self._held = False

  def _holder_text(self) -> str:
    return json.dumps(
      {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
      }
    )

  def _create(self) -> bool:
    """Creates the lock file; False if it exists."""
    text = self._holder_text()
    if storage.is_remote(self.path):
      if self.path.exists():
        return False
      self.path.write_text(text)
      return True
    try:
      fd = os.open(os.fspath(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      f.write(text)
    return True

  def acquire(self) -> None:
    for _ in range(3):
      if self._create():
        self._held = True
        return
      try:
        holder = json.loads(self.path.read_text())
        host, pid = str(holder["host"]), int(holder["pid"])
      except FileNotFoundError:
        continue  # released meanwhile: try again
      except (ValueError, KeyError, TypeError):
        holder, host, pid = {}, "?", -1
      here = host == socket.gethostname()
      if here and pid > 0 and not _alive(pid):
        self._say(
          f"taking over the stale lock {self.path} of process {pid} "
          f"(started {holder.get('started', '?')}), which no longer runs"
        )
        self.path.unlink()
        continue
      who = f"process {pid} on {host}" if pid > 0 else "an unknown process"
      raise errors.WorkdirLockedError(
        f"{self.path.parent} is in use by {who} (lock {self.path}, started "
        f"{holder.get('started', '?')}); wait for it to finish, use another "
        f"--workdir, or delete {self.path} if no run is active"
      )
    raise errors.WorkdirLockedError(
      f"cannot take the lock {self.path}: it keeps changing hands"
    )

  def release(self) -> None:
    if self._held:
      self._held = False
      try:
        self.path.unlink()
      except FileNotFoundError:
        pass

  def __enter__(self) -> WorkdirLock:
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()
