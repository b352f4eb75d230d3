"""Run logging: TensorBoard scalars, a JSON-lines history and curve plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np


class MetricWriter:
  """Writes scalars to TensorBoard (tensorboardX) and ``history.jsonl``."""

  def __init__(self, workdir: str | Path, enabled: bool = True):
    self.workdir = Path(workdir)
    self.enabled = enabled
    self._tb = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(str(self.workdir / "tensorboard"))
      self._history = open(self.workdir / "history.jsonl", "a")

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    for k, v in scalars.items():
      self._tb.add_scalar(k, float(v), int(step))
    self._history.write(json.dumps({"step": int(step), **{
        k: float(v) for k, v in scalars.items()}}) + "\n")
    self._history.flush()

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._history.close()


def read_history(workdir: str | Path) -> list[dict]:
  path = Path(workdir) / "history.jsonl"
  if not path.exists():
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _plot_panel(canvas: np.ndarray, x0: int, y0: int, w: int, h: int,
                series: Mapping[str, tuple[np.ndarray, np.ndarray]],
                title: str) -> None:
  """Draws line series into ``canvas[y0:y0+h, x0:x0+w]`` with cv2."""
  colors = [(200, 60, 20), (30, 140, 30), (20, 60, 200), (150, 40, 150),
            (20, 150, 170)]
  cv2.rectangle(canvas, (x0, y0), (x0 + w, y0 + h), (0, 0, 0), 1)
  cv2.putText(canvas, title, (x0 + 6, y0 - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
              (0, 0, 0), 1, cv2.LINE_AA)
  pts = [(xs, ys) for xs, ys in series.values() if len(xs)]
  if not pts:
    return
  xmin = min(float(np.min(x)) for x, _ in pts)
  xmax = max(float(np.max(x)) for x, _ in pts)
  ymin = min(float(np.min(y)) for _, y in pts)
  ymax = max(float(np.max(y)) for _, y in pts)
  xmax = xmax if xmax > xmin else xmin + 1
  ymax = ymax if ymax > ymin else ymin + 1
  for txt, yv in ((f"{ymax:.3g}", y0 + 12), (f"{ymin:.3g}", y0 + h - 4)):
    cv2.putText(canvas, txt, (x0 + 4, yv), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (80, 80, 80), 1, cv2.LINE_AA)
  for i, (name, (xs, ys)) in enumerate(series.items()):
    if not len(xs):
      continue
    px = x0 + 40 + (np.asarray(xs) - xmin) / (xmax - xmin) * (w - 50)
    py = y0 + h - 10 - (np.asarray(ys) - ymin) / (ymax - ymin) * (h - 20)
    poly = np.stack([px, py], -1).astype(np.int32).reshape(-1, 1, 2)
    color = colors[i % len(colors)]
    cv2.polylines(canvas, [poly], False, color, 2, cv2.LINE_AA)
    if len(xs) == 1:
      cv2.circle(canvas, tuple(poly[0, 0]), 4, color, -1)
    cv2.putText(canvas, name, (x0 + w - 170, y0 + 18 + 16 * i),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)


def plot_curves(workdir: str | Path, out_name: str = "train_curves.png"
                ) -> Path | None:
  """Plots training loss and validation MPJPE/PA-MPJPE from the history."""
  hist = read_history(workdir)
  if not hist:
    return None

  def series(key):
    rows = [(r["step"], r[key]) for r in hist if key in r]
    if not rows:
      return np.zeros(0), np.zeros(0)
    a = np.asarray(rows, np.float64)
    return a[:, 0], a[:, 1]

  canvas = np.full((360, 960, 3), 255, np.uint8)
  _plot_panel(canvas, 20, 30, 440, 310,
              {"train/loss": series("train/loss")}, "training loss")
  _plot_panel(canvas, 500, 30, 440, 310,
              {"val/MPJPE": series("val/MPJPE"),
               "val/PA-MPJPE": series("val/PA-MPJPE")},
              "validation error (mm) vs step")
  out = Path(workdir) / out_name
  cv2.imwrite(str(out), canvas)
  return out
