"""Bad inputs through the real entry points, one row each.

Every row runs ``train.py``, ``evaluate.py``, ``demo.py``,
``convert_torch_weights.py`` or the synthetic generator as a subprocess on
one bad file, flag or config value and checks:

* the exit status: 2 for an input the user can fix, 1 for a run that
  failed (a non-finite loss), 0 where the input is handled (a stale lock
  taken over, bad samples skipped on request);
* the message: the last line of stderr is one ``error: ...`` line that
  names the file, key, value or sample at fault (no traceback);
* that nothing else on disk changed: every file under the row's watched
  folders (its inputs, the shared run) is byte-identical afterwards, except
  for the outputs the row expects.

``HYBRIK_BAD_INPUTS_REPO=/path/to/another/checkout`` runs the same table
against another checkout of the project (how the verdicts before the fixes
were recorded).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import checkpoint_recipe
import numpy as np
import pytest
import torch_writer as tw
from helpers import REPO as THIS_REPO
from helpers import subprocess_env, xla_cache

from hybrik_jax.data.human_data import load_human_data, save_human_data

REPO = Path(os.environ.get("HYBRIK_BAD_INPUTS_REPO", THIS_REPO))
CONFIG = str(REPO / "configs" / "synthetic.py")

# A tiny run of the synthetic config (64 px, 2 images per step).
TINY = [
  "--config.model.image_size=64",
  "--config.per_device_batch_size=2",
  "--config.num_epochs=1",
  "--config.max_steps=2",
  "--config.log_every_steps=1",
  "--config.eval_every_epochs=0",
  "--config.data.synthetic.generate=false",
]


# -----------------------------------------------------------------------------
# Shared inputs: a tiny dataset, a trained run, a converted-checkpoint source.
# -----------------------------------------------------------------------------


def _py(*args: str, cwd=None, timeout=600) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, *args],
    capture_output=True,
    text=True,
    env=subprocess_env(),
    cwd=cwd or REPO,
    timeout=timeout,
  )


@pytest.fixture(scope="module")
def env(module_tmp, smpl_pkl):
  base = module_tmp.mktemp("bad_inputs")
  data = base / "data"
  proc = _py(
    "-m",
    "hybrik_jax.data.synthetic",
    "--num=12",
    "--num_test=4",
    f"--out={data}",
    "--no_progress",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  run = base / "run"
  proc = _py(
    str(REPO / "train.py"),
    "--config",
    CONFIG,
    "--workdir",
    str(run),
    f"--config.data.root={data}",
    f"--jax_cache_dir={xla_cache()}",
    *TINY,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  ckpt = base / "recipe.pth"
  state_dict = checkpoint_recipe.full_state_dict(smpl_pkl)
  tw.save(checkpoint_recipe.mmcv_container(state_dict), ckpt)
  image = data / "images" / sorted(os.listdir(data / "images"))[0]
  return {"base": base, "data": data, "run": run, "ckpt": ckpt, "image": image}


def _train(env, workdir, *extra):
  return [
    str(REPO / "train.py"),
    "--config",
    CONFIG,
    "--workdir",
    str(workdir),
    f"--config.data.root={env['data']}",
    f"--jax_cache_dir={xla_cache()}",
    *TINY,
    *extra,
  ]


def _evaluate(env, *extra):
  return [
    str(REPO / "evaluate.py"),
    "--config",
    CONFIG,
    "--checkpoint",
    str(env["run"]),
    f"--config.data.root={env['data']}",
    *extra,
  ]


def _demo(env, *extra):
  return [str(REPO / "demo.py"), "--checkpoint", str(env["run"]), *extra]


def _convert(*args):
  return [str(REPO / "convert_torch_weights.py"), *map(str, args)]


def _npz(env, tmp: Path, name: str, split: str, change: Callable) -> Path:
  """A copy of the tiny dataset's ``split`` file with ``change(dict)``
  applied, next to its images (so image paths still resolve)."""
  src = env["data"] / f"synthetic_{split}.npz"
  hd = load_human_data(src)
  d = {k: hd[k] for k in hd}
  change(d)
  out = tmp / "data"
  if not out.exists():
    out.mkdir()
    (out / "images").symlink_to(env["data"] / "images")
  path = out / f"{name}.npz"
  save_human_data(path, d)
  return path


def _train_data(env, tmp, change):
  """A data root whose train split is the tiny one with ``change`` applied
  (test split unchanged)."""
  path = _npz(env, tmp, "synthetic_train", "train", change)
  (path.parent / "synthetic_test.npz").symlink_to(
    env["data"] / "synthetic_test.npz"
  )
  return path.parent


def _set(key, index, value):
  def change(d):
    d[key][index] = value

  return change


def _nan_gt(d):
  joint = np.flatnonzero(d["keypoints3d17_mask"])[2]
  d["keypoints3d17_relative"][1, joint, 0] = np.nan


# -----------------------------------------------------------------------------
# The table.
# -----------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
  """One bad input.

  Attributes:
    id: the row's name.
    cmd: ``(env, tmp) -> argv`` after ``python`` (may create files in tmp).
    rc: expected exit status.
    message: regex the output must match (stderr's last line when rc != 0).
    watch: ``(env, tmp) -> [folders]`` whose files must not change (default:
      tmp and the shared run).
    outputs: names of files the row may create or change (regex on the path
      relative to a watched folder).
  """

  id: str
  cmd: Callable
  rc: int
  message: str
  outputs: str = r"^$"
  watch: Callable | None = None


def _occupied(tmp):
  (tmp / "mine" / "images").mkdir(parents=True)
  (tmp / "mine" / "images" / "000001.jpg").write_bytes(b"my photo")
  return tmp / "mine"


def _live_lock(env, tmp):
  work = tmp / "locked"
  work.mkdir()
  holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": "x"}
  (work / "train.lock").write_text(json.dumps(holder))
  return _train(env, work)


def _stale_lock(env, tmp):
  work = tmp / "stale"
  work.mkdir()
  # A pid that cannot run: above the kernel's pid_max.
  holder = {"host": socket.gethostname(), "pid": 2**30, "started": "x"}
  (work / "train.lock").write_text(json.dumps(holder))
  return _train(env, work, "--config.max_steps=1")


def _changed_config(env, tmp):
  return _train(env, env["run"], "--config.optimizer.weight_decay=0.01")


def _text_file(tmp, name, text="not what you think"):
  path = tmp / name
  path.write_text(text)
  return path


def _truncated_ckpt(env, tmp):
  data = env["ckpt"].read_bytes()
  path = tmp / "truncated.pth"
  path.write_bytes(data[: len(data) // 3])
  return path


def _malicious_ckpt(tmp):
  path = tmp / "evil.pth"
  data_pkl = (
    b"\x80\x02cos\nsystem\nq\x00X\x06\x00\x00\x00echo 1q\x01\x85q\x02Rq\x03."
  )
  tw.save({}, path, data_pkl=data_pkl)
  return path


def _previous_conversion(env, tmp):
  out = tmp / "converted"
  proc = _py(*_convert(env["ckpt"], out))
  assert proc.returncode == 0, proc.stderr
  return _convert(env["ckpt"], out)


def _foreign_folder(env, tmp):
  out = tmp / "thesis"
  (out / "sub").mkdir(parents=True)
  (out / "thesis.txt").write_text("chapter 1")
  (out / "sub" / "data.csv").write_text("1,2")
  return _convert(env["ckpt"], out, "--overwrite")


def _nan_intrinsics(d):
  d["cam_param"]["intrinsic"][0, 0, 0] = np.nan


def _zero_box(d):
  d["bbox_xywh"][2, 2:4] = d["bbox_xywh"][2, 0:2]


def _no_config_entry(d):
  del d["config"]


def _no_gt17(d):
  for key in [k for k in d if k.startswith("keypoints3d17_relative")]:
    del d[key]


ROWS = [
  # --- train.py: flags and config values -----------------------------------
  Row("train/no-config", lambda e, t: [str(REPO / "train.py")], 2, r"config"),
  Row(
    "train/config-file-missing",
    lambda e, t: [
      str(REPO / "train.py"),
      "--config",
      str(t / "nope.py"),
      "--workdir",
      str(t / "w"),
    ],
    2,
    r"--config .*nope\.py: cannot load it .*No such file",
  ),
  Row(
    "train/unknown-flag",
    lambda e, t: _train(e, t / "w", "--no_such_flag=1"),
    2,
    r"no_such_flag",
  ),
  Row(
    "train/dtype-float16",
    lambda e, t: _train(e, t / "w", "--config.model.dtype=float16"),
    2,
    r"config\.model\.dtype='float16'.*bfloat16",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/batch-0",
    lambda e, t: _train(e, t / "w", "--config.per_device_batch_size=0"),
    2,
    r"config\.per_device_batch_size=0",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/precision-unknown",
    lambda e, t: _train(e, t / "w", "--config.model.precision=ultra"),
    2,
    r"config\.model\.precision='ultra'",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/source-unknown",
    lambda e, t: _train(e, t / "w", "--config.data.source=csv"),
    2,
    r"config\.data\.source='csv'",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/backbone-unknown",
    lambda e, t: _train(e, t / "w", "--config.model.backbone=resnet99"),
    2,
    r"resnet99",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/partial-coordinator",
    lambda e, t: _train(
      e, t / "w", "--distributed", "--coordinator_address=localhost:1"
    ),
    2,
    r"--num_processes",
  ),
  Row(
    "train/nan-lr",
    lambda e, t: _train(e, t / "w", "--config.optimizer.lr=nan"),
    1,
    r"non-finite .* step 1",
    outputs=r"^w(/|$)",
  ),
  # --- train.py: files -----------------------------------------------------
  Row(
    "train/data-root-empty",
    lambda e, t: _train(e, t / "w", f"--config.data.root={t / 'empty'}"),
    2,
    r"annotation file .*synthetic_train\.npz not found",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/synthetic-into-occupied-folder",
    lambda e, t: _train(
      e,
      t / "w",
      f"--config.data.root={_occupied(t)}",
      "--config.data.synthetic.generate=true",
    ),
    2,
    r"refusing to generate .*images/000001\.jpg",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/smpl-missing",
    lambda e, t: _train(e, t / "w", f"--config.body_model.path={t / 'x.pkl'}"),
    2,
    r"x\.pkl: SMPL model path does not exist",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/backbone-init-missing",
    lambda e, t: _train(
      e, t / "w", f"--config.model.backbone_init={t / 'r34.pth'}"
    ),
    2,
    r"r34\.pth.*not found",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/npz-not-a-zip",
    lambda e, t: _train(
      e,
      t / "w",
      f"--config.data.root={_text_file(t, 'synthetic_train.npz').parent}",
    ),
    2,
    r"synthetic_train\.npz.*not a readable npz",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/nan-box",
    lambda e, t: _train(
      e,
      t / "w",
      f"--config.data.root={_train_data(e, t, _set('bbox_xywh', 3, np.nan))}",
    ),
    2,
    r"synthetic_train\.npz: 1 bad sample.*bbox_xywh: non-finite at 3",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/negative-box",
    lambda e, t: _train(
      e,
      t / "w",
      "--config.data.root="
      + str(_train_data(e, t, _set("bbox_xywh", (2, 2), -5.0))),
    ),
    2,
    r"bbox_xywh: negative or zero size at 2",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/depth-factor-0",
    lambda e, t: _train(
      e,
      t / "w",
      f"--config.data.root={_train_data(e, t, _set('depth_factor', 5, 0.0))}",
    ),
    2,
    r"depth_factor: non-positive at 5",
    outputs=r"^w(/|$)",
  ),
  Row(
    "train/config-change-on-resume",
    _changed_config,
    2,
    r"another config \(config\.optimizer\.weight_decay: 0\.0 -> 0\.01\)",
  ),
  Row(
    "train/live-lock",
    _live_lock,
    2,
    rf"is in use by process {os.getpid()}",
  ),
  Row(
    "train/stale-lock-taken-over",
    _stale_lock,
    0,
    r"taking over the stale lock",
    outputs=r"^stale(/|$)",
  ),
  # --- evaluate.py ---------------------------------------------------------
  Row(
    "evaluate/checkpoint-missing",
    lambda e, t: [*_evaluate(e)[:3], "--checkpoint", str(t / "none")],
    2,
    r"none does not exist",
  ),
  Row(
    "evaluate/checkpoint-not-a-run",
    lambda e, t: [
      *_evaluate(e)[:3],
      "--checkpoint",
      str(_text_file(t, "notes.txt").parent),
    ],
    2,
    r"neither a converted checkpoint",
  ),
  Row(
    "evaluate/dataset-name-unknown",
    lambda e, t: _evaluate(e, "--dataset_name=pw3dd"),
    2,
    r"pw3dd",
  ),
  Row(
    "evaluate/dataset-name-contradicts-file",
    lambda e, t: _evaluate(
      e, f"--data={e['data'] / 'synthetic_train.npz'}", "--dataset_name=pw3d"
    ),
    2,
    r"synthetic_train\.npz: field 'config': the file is a 'h36m' file",
  ),
  Row(
    "evaluate/file-says-nothing",
    lambda e, t: _evaluate(
      e, f"--data={_npz(e, t, 'anon', 'test', _no_config_entry)}"
    ),
    2,
    r"anon\.npz: field 'config': cannot tell the dataset type",
  ),
  Row(
    "evaluate/config-protocol-contradicts-file",
    lambda e, t: _evaluate(e, "--config.data.test.dataset_name=coco"),
    2,
    r"synthetic_test\.npz: field 'config': the file is a 'pw3d' file",
  ),
  Row(
    "evaluate/data-missing",
    lambda e, t: _evaluate(e, f"--data={t / 'gone.npz'}"),
    2,
    r"gone\.npz does not exist",
  ),
  Row(
    "evaluate/data-not-npz",
    lambda e, t: _evaluate(e, f"--data={_text_file(t, 'x.npz')}"),
    2,
    r"x\.npz.*not a readable npz",
  ),
  Row(
    "evaluate/metric-unknown",
    lambda e, t: _evaluate(e, "--metrics=mpjpe,fancy"),
    2,
    r"metric 'fancy' is not supported",
  ),
  Row(
    "evaluate/image-size-contradicts-run",
    lambda e, t: _evaluate(e, "--config.model.image_size=128"),
    2,
    r"--config\.model\.image_size=128 contradicts the checkpoint.*=64",
  ),
  Row(
    "evaluate/nan-ground-truth",
    lambda e, t: _evaluate(
      e, f"--data={_npz(e, t, 'nan_gt', 'test', _nan_gt)}"
    ),
    2,
    r"nan_gt\.npz: 1 bad sample \(keypoints3d17_relative: non-finite at 1\)",
  ),
  Row(
    "evaluate/nan-ground-truth-skipped",
    lambda e, t: _evaluate(
      e,
      f"--data={_npz(e, t, 'nan_gt', 'test', _nan_gt)}",
      "--config.data.bad_samples=skip",
      f"--out={t / 'out'}",
    ),
    0,
    r"3 samples \(1 bad ones skipped\)",
    outputs=r"^out(/|$)",
  ),
  Row(
    "evaluate/no-gt-17",
    lambda e, t: _evaluate(e, f"--data={_npz(e, t, 'no17', 'test', _no_gt17)}"),
    2,
    r"no17\.npz.*keypoints3d17_relative",
  ),
  Row(
    "evaluate/nan-intrinsics",
    lambda e, t: _evaluate(
      e, f"--data={_npz(e, t, 'k', 'test', _nan_intrinsics)}"
    ),
    2,
    r"k\.npz: 1 bad sample \(cam_param\.intrinsic: non-finite at 0\)",
  ),
  Row(
    "evaluate/zero-size-box",
    lambda e, t: _evaluate(
      e, f"--data={_npz(e, t, 'box0', 'test', _zero_box)}"
    ),
    2,
    r"box0\.npz: 1 bad sample \(bbox_xywh: negative or zero size at 2\)",
  ),
  # --- demo.py -------------------------------------------------------------
  Row(
    "demo/checkpoint-missing",
    lambda e, t: [
      str(REPO / "demo.py"),
      "--checkpoint",
      str(t / "none"),
      "--input",
      str(e["image"]),
      "--out",
      str(t / "o"),
    ],
    2,
    r"none",
  ),
  Row(
    "demo/input-missing",
    lambda e, t: _demo(e, "--input", str(t / "no.jpg"), "--out", str(t / "o")),
    2,
    r"no\.jpg",
  ),
  Row(
    "demo/input-not-an-image",
    lambda e, t: _demo(
      e, "--input", str(_text_file(t, "fake.jpg")), "--out", str(t / "o")
    ),
    2,
    r"fake\.jpg",
  ),
  Row(
    "demo/bbox-malformed",
    lambda e, t: _demo(
      e, "--input", str(e["image"]), "--bbox", "1,2,x", "--out", str(t / "o")
    ),
    2,
    r"bbox",
  ),
  Row(
    "demo/image-size-contradicts-run",
    lambda e, t: _demo(
      e, "--input", str(e["image"]), "--image_size=96", "--out", str(t / "o")
    ),
    2,
    r"image.size 96 differs",
  ),
  Row(
    "demo/placement-unknown",
    lambda e, t: _demo(
      e, "--input", str(e["image"]), "--placement=moon", "--out", str(t / "o")
    ),
    2,
    r"placement",
  ),
  # --- convert_torch_weights.py -------------------------------------------
  Row(
    "convert/missing-file",
    lambda e, t: _convert(t / "none.pth", t / "out"),
    2,
    r"none\.pth",
  ),
  Row(
    "convert/not-a-checkpoint",
    lambda e, t: _convert(_text_file(t, "a.pth"), t / "out"),
    2,
    r"a\.pth",
  ),
  Row(
    "convert/truncated",
    lambda e, t: _convert(_truncated_ckpt(e, t), t / "out"),
    2,
    r"truncated\.pth",
  ),
  Row(
    "convert/malicious-pickle",
    lambda e, t: _convert(_malicious_ckpt(t), t / "out"),
    2,
    r"evil\.pth.*(os|system)",
  ),
  Row(
    "convert/previous-conversion-without-overwrite",
    _previous_conversion,
    2,
    r"previous conversion.*--overwrite",
  ),
  Row(
    "convert/overwrite-a-foreign-folder",
    _foreign_folder,
    2,
    r"thesis: folder holds files that are not a previous conversion",
  ),
  Row(
    "convert/one-positional",
    lambda e, t: _convert(e["ckpt"]),
    2,
    r"OUT_DIR|positional|argument",
  ),
  # --- the synthetic generator ---------------------------------------------
  Row(
    "synthetic/occupied-folder",
    lambda e, t: [
      "-m",
      "hybrik_jax.data.synthetic",
      "--num=4",
      f"--out={_occupied(t)}",
      "--no_progress",
    ],
    2,
    r"refusing to generate .*images/000001\.jpg",
  ),
]


def _snapshot(folders) -> dict[str, str]:
  """{path: sha256} of every file (symlinks not followed) under folders."""
  out = {}
  for folder in folders:
    folder = Path(folder)
    for root, dirs, files in os.walk(folder):
      for name in files:
        p = Path(root) / name
        if p.is_symlink():
          continue
        out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
  return out


def _record(row, proc, before, after) -> None:
  """Appends what a row did to ``$HYBRIK_BAD_INPUTS_VERDICTS`` (JSON
  lines), if set: how the verdicts of a checkout are tabulated."""
  path = os.environ.get("HYBRIK_BAD_INPUTS_VERDICTS")
  if not path:
    return
  lines = proc.stderr.strip().splitlines()
  changed = sorted(
    p for p in set(before) | set(after) if before.get(p) != after.get(p)
  )
  with open(path, "a") as f:
    f.write(
      json.dumps(
        {
          "id": row.id,
          "rc": proc.returncode,
          "traceback": "Traceback" in proc.stderr,
          "stderr_lines": len(lines),
          "last": lines[-1][:200] if lines else "",
          "changed": len(changed),
        }
      )
      + "\n"
    )


def test_table_has_at_least_40_rows():
  assert len(ROWS) >= 40 and len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row, env, tmp_path):
  argv = row.cmd(env, tmp_path)
  watched = row.watch(env, tmp_path) if row.watch else [tmp_path, env["run"]]
  before = _snapshot(watched)
  proc = _py(*argv, cwd=tmp_path)
  after = _snapshot(watched)
  out = proc.stdout + proc.stderr
  _record(row, proc, before, after)
  assert proc.returncode == row.rc, out[-3000:]
  if row.rc != 0:
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    assert last.startswith("error: "), out[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(row.message, last), last
  else:
    assert re.search(row.message, out), out[-3000:]

  def rel(p):
    for folder in watched:
      if p.startswith(str(folder) + os.sep):
        return os.path.relpath(p, folder)
    return p

  changed = sorted(
    rel(p)
    for p in set(before) | set(after)
    if before.get(p) != after.get(p) and not re.search(row.outputs, rel(p))
  )
  assert not changed, changed


@pytest.mark.slow
def test_evaluate_scores_the_model_that_was_trained(env, tmp_path):
  """A 64-px run evaluated with configs/synthetic.py (128 px) uses the run's
  64 px, as an explicit --config.model.image_size=64 does; a --data file's
  own 'config' entry picks the protocol; metrics.json says what it scored."""

  def evaluate(*extra):
    proc = _py(*_evaluate(env, *extra), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc

  implicit = evaluate(f"--out={tmp_path / 'a'}")
  evaluate(f"--out={tmp_path / 'b'}", "--config.model.image_size=64")
  a = json.loads((tmp_path / "a" / "metrics.json").read_text())
  b = json.loads((tmp_path / "b" / "metrics.json").read_text())
  assert a["metrics_mm"] == b["metrics_mm"]
  assert "checkpoint: step 2" in implicit.stdout
  assert a["step"] == 2 and a["run_config"] == str(env["run"] / "config.json")
  assert a["checkpoint_step_dir"] == str(env["run"] / "checkpoints" / "2")
  assert re.fullmatch(r"[0-9a-f]{64}", a["config_sha256"])
  assert a["config_sha256"] == b["config_sha256"]  # the same effective config
  assert a["skipped_samples"] == []

  proc = evaluate(
    f"--out={tmp_path / 'c'}", f"--data={env['data'] / 'synthetic_test.npz'}"
  )
  assert "(pw3d protocol)" in proc.stdout
  c = json.loads((tmp_path / "c" / "metrics.json").read_text())
  assert c["dataset_name"] == "pw3d" and c["metrics_mm"] == a["metrics_mm"]
