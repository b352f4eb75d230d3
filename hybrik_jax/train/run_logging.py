"""Run logging: TensorBoard scalars, a JSON-lines history and curve plots."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from hybrik_jax import storage


class MetricWriter:
  """Writes scalars to TensorBoard (tensorboardX) and ``history.jsonl``.

  A local workdir is written in place. A remote one (``gs://…``) is written
  through a local staging folder: TensorBoard's event file and the history
  are uploaded every ``sync_every_s`` seconds and on :meth:`close`.
  """

  def __init__(
    self, workdir: Any, enabled: bool = True, sync_every_s: float = 30.0
  ):
    self.workdir = storage.path(workdir)
    self.enabled = enabled
    self._tb = None
    self._staging = None
    self._sync_every_s = sync_every_s
    self._last_sync = time.monotonic()
    if enabled:
      from tensorboardX import SummaryWriter

      tb_dir = self.workdir / "tensorboard"
      if storage.is_remote(self.workdir):
        self._staging = tempfile.mkdtemp(prefix="hybrik_jax_tb_")
        tb_dir = self._staging
      self._tb = SummaryWriter(os.fspath(tb_dir))
      self._history = storage.MirroredFile(self.workdir / "history.jsonl")

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    for k, v in scalars.items():
      self._tb.add_scalar(k, float(v), int(step))
    self._history.append(
      json.dumps(
        {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
      )
      + "\n"
    )
    if time.monotonic() - self._last_sync >= self._sync_every_s:
      self.sync()

  def sync(self) -> None:
    """Uploads the staged files (remote workdirs; a no-op for local ones)."""
    if not self.enabled:
      return
    self._history.sync()
    if self._staging is not None:
      self._tb.flush()
      storage.upload_dir(self._staging, self.workdir / "tensorboard")
    self._last_sync = time.monotonic()

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self.sync()
      self._history.close()
      if self._staging is not None:
        shutil.rmtree(self._staging, ignore_errors=True)


def read_history(workdir: Any) -> list[dict]:
  path = storage.path(workdir) / "history.jsonl"
  if not path.exists():
    return []
  return [
    json.loads(line) for line in path.read_text().splitlines() if line.strip()
  ]


def _series(hist: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of one scalar over the history."""
  rows = [(r["step"], r[key]) for r in hist if key in r]
  if not rows:
    return np.zeros(0), np.zeros(0)
  a = np.asarray(rows, np.float64)
  return a[:, 0], a[:, 1]


def plot_curves(
  workdir: Any, out_name: str = "train_curves.png", log_loss: bool = True
) -> Any:
  """Plots the run's curves from ``history.jsonl`` into ``workdir/out_name``.

  Three panels over the optimiser step: the training loss and its terms
  (log scale unless ``log_loss=False``; symmetric-log when a value is <= 0,
  as the authors' Laplace uvd term can be), validation MPJPE and
  PA-MPJPE (mm), and the learning-rate schedule. Drawn with matplotlib's
  headless Agg backend.

  Returns:
    The PNG's path, or None when the history is empty.
  """
  hist = read_history(workdir)
  if not hist:
    return None
  import matplotlib

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  fig, (ax_loss, ax_val, ax_lr) = plt.subplots(
    1, 3, figsize=(15, 4.2), layout="constrained"
  )
  lowest = np.inf
  for key in (
    "train/loss",
    "train/loss_uvd",
    "train/loss_beta",
    "train/loss_twist",
    "train/loss_theta",
    "train/loss_scale",  # the authors' camera models
    "train/loss_trans",
  ):
    x, y = _series(hist, key)
    if len(x):
      lowest = min(lowest, float(np.min(y)))
      ax_loss.plot(
        x,
        y,
        label=key.split("/", 1)[1],
        linewidth=2.0 if key == "train/loss" else 1.0,
      )
  if log_loss and lowest > 0:
    ax_loss.set_yscale("log")
  elif log_loss:
    ax_loss.set_yscale("symlog", linthresh=1e-2)
  ax_loss.set(
    title="training loss",
    xlabel="step",
    ylabel="loss" + (" (log scale)" if log_loss else ""),
  )
  for key in ("val/MPJPE", "val/PA-MPJPE"):
    x, y = _series(hist, key)
    if len(x):
      ax_val.plot(x, y, marker="o", label=key.split("/", 1)[1])
  ax_val.set(title="validation error", xlabel="step", ylabel="error (mm)")
  x, y = _series(hist, "train/lr")
  if len(x):
    # lr logged at step s is the one step s used: it holds on (s_prev, s].
    ax_lr.step(x, y, where="pre", label="lr")
    ax_lr.set_yscale("log")
  ax_lr.set(title="learning rate", xlabel="step", ylabel="lr (log scale)")
  for ax in (ax_loss, ax_val, ax_lr):
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize="small")
  out = storage.path(workdir) / out_name
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100)
  plt.close(fig)
  storage.write_bytes(out, buf.getvalue())
  return out
