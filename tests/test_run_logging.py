"""Run logging: the history file and the matplotlib training curves."""

import cv2
import numpy as np

from hybrik_jax.train import run_logging


def _history(workdir):
  w = run_logging.MetricWriter(workdir)
  for step in range(10, 310, 10):
    w.write(
      step,
      {
        "train/loss": 10.0 / step**0.3,
        "train/loss_uvd": 5.0 / step**0.3,
        "train/lr": 1e-3 if step < 250 else 1e-4,
      },
    )
  for step in (0, 100, 300):
    w.write(step, {"val/MPJPE": 600.0 - step, "val/PA-MPJPE": 400.0 - step})
  w.close()


def test_history_round_trips(tmp_path):
  _history(tmp_path)
  hist = run_logging.read_history(tmp_path)
  assert len(hist) == 33 and hist[0] == {
    "step": 10,
    "train/loss": 10.0 / 10**0.3,
    "train/loss_uvd": 5.0 / 10**0.3,
    "train/lr": 1e-3,
  }
  assert (tmp_path / "tensorboard").is_dir()


def test_curves_are_drawn_with_three_panels(tmp_path):
  _history(tmp_path)
  out = run_logging.plot_curves(tmp_path)
  img = cv2.imread(str(out))
  assert img.shape == (420, 1500, 3)
  # Something is drawn in each third (loss, validation, learning rate).
  for third in np.split(img, 3, axis=1):
    assert (third < 200).mean() > 0.01
  linear = run_logging.plot_curves(tmp_path, "linear.png", log_loss=False)
  assert not np.array_equal(cv2.imread(str(linear)), img)


def test_no_history_no_plot(tmp_path):
  assert run_logging.plot_curves(tmp_path) is None
