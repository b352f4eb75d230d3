"""Preemption: stop at a step boundary that every process agrees on.

Spot/preemptible TPU VMs and SLURM (``--requeue``, ``--signal``) announce the
end of a job with SIGTERM. The training loop asks :meth:`Watch.should_stop`
after every step; when it says yes the loop writes a checkpoint of that step
(iterator state included) and returns, so the restarted job resumes
bit-identically.

* One process: a SIGTERM handler sets a flag (the handler only records it;
  the step in flight finishes first).
* Several processes: JAX's preemption sync manager (started by
  ``jax.distributed.initialize``) receives the SIGTERM and
  ``multihost_utils.reached_preemption_sync_point(step)`` turns true on every
  process at the same step, so no process waits forever in a collective that
  another has left. No Python handler is installed then (it would replace
  JAX's).
"""

from __future__ import annotations

import signal
import threading

import jax


class Watch:
  """Watches for preemption during a training run: ``install()`` before the
  loop, ``uninstall()`` after it (in a ``finally``)."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def install(self) -> None:
    """Installs the SIGTERM handler (one process, main thread only)."""
    in_main = threading.current_thread() is threading.main_thread()
    if jax.process_count() == 1 and in_main:
      self._previous = signal.signal(signal.SIGTERM, self._on_signal)

  def uninstall(self) -> None:
    """Restores the SIGTERM handler that was there before ``install``."""
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _on_signal(self, signum, frame) -> None:
    del signum, frame
    self.requested = True

  def should_stop(self, step: int) -> bool:
    """Whether to checkpoint ``step`` and stop (the same on every process)."""
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils

      return bool(multihost_utils.reached_preemption_sync_point(step))
    return self.requested
