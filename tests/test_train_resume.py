"""train.py end to end: kill -9 mid-run, resume, bit-identical parameters;
NaN guard; corrupt-checkpoint fallback."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import subprocess_env, train_cmd, xla_cache

ROOT = Path(__file__).resolve().parents[1]

# A tiny run of the synthetic config: 64-px images, batch 2, 4 steps.
TINY = [
  "--config.model.image_size=64",
  "--config.per_device_batch_size=2",
  "--config.data.synthetic.num_train=8",
  "--config.data.synthetic.num_test=4",
  "--config.num_epochs=1",
  "--config.max_steps=4",
  "--config.checkpoint_every_steps=1",
  "--config.log_every_steps=1",
  "--config.eval_every_epochs=0",
]


def _cmd(workdir, data_root, cache, extra=()):
  return train_cmd(workdir, data_root, cache, *TINY, *extra)


def _env():
  return subprocess_env()


def _run(cmd, timeout=900):
  proc = subprocess.run(
    cmd, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=timeout
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def _summary(workdir):
  return json.loads((Path(workdir) / "summary.json").read_text())


@pytest.fixture(scope="module")
def straight(module_tmp):
  """The uninterrupted reference run (also warms the compilation cache)."""
  base = module_tmp.mktemp("train")
  data, cache = base / "data", xla_cache()
  _run(_cmd(base / "straight", data, cache))
  return base, _summary(base / "straight")


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(straight):
  base, ref = straight
  assert ref["steps"] == 4 and ref["resumed_from"] is None
  work = base / "killed"
  proc = subprocess.Popen(
    _cmd(work, base / "data", xla_cache()),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    env=_env(),
    cwd=ROOT,
  )
  ckpt = work / "checkpoints"
  deadline = time.time() + 900
  try:
    # Kill -9 as soon as step 2 is committed (orbax renames tmp -> "2").
    while not (ckpt / "2").is_dir():
      assert proc.poll() is None, "run ended before it could be killed"
      assert time.time() < deadline, "no checkpoint appeared"
      time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL
  assert not (work / "summary.json").exists()
  _run(_cmd(work, base / "data", xla_cache()))
  resumed = _summary(work)
  assert resumed["resumed_from"] is not None and resumed["resumed_from"] >= 2
  assert resumed["steps"] == 4
  assert resumed["params_sha256"] == ref["params_sha256"]


@pytest.mark.slow
def test_sigterm_checkpoints_the_step_and_resumes_bit_identically(straight):
  base, ref = straight
  work = base / "preempted"
  # Only the preemption (and the run's end) write checkpoints here.
  cmd = _cmd(
    work, base / "data", xla_cache(), ["--config.checkpoint_every_steps=100"]
  )
  proc = subprocess.Popen(
    cmd,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=_env(),
    cwd=ROOT,
  )
  history = work / "history.jsonl"
  deadline = time.time() + 900
  try:
    while not (history.exists() and history.read_text().strip()):
      assert proc.poll() is None, "run ended before the SIGTERM"
      assert time.time() < deadline, "no step was logged"
      time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
  finally:
    proc.kill()
  assert proc.returncode == 0, err[-3000:]
  stopped = json.loads(history.read_text().splitlines()[-1])["step"]
  steps = sorted(
    int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit()
  )
  assert steps and steps[-1] < 4, (steps, out)
  assert f"preempted after {steps[-1]} steps" in out
  assert "run the same command again to resume" in out + err
  assert stopped <= steps[-1]
  _run(cmd)
  resumed = _summary(work)
  assert resumed["resumed_from"] == steps[-1] and resumed["steps"] == 4
  assert resumed["params_sha256"] == ref["params_sha256"]


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back(straight):
  base, ref = straight
  work = base / "corrupt"
  _run(_cmd(work, base / "data", xla_cache(), ["--config.max_steps=3"]))
  # Overwrite every file of the newest checkpoint's state with garbage.
  newest = work / "checkpoints" / "3"
  files = [f for f in (newest / "state").rglob("*") if f.is_file()]
  assert files
  for f in files:
    f.write_bytes(b"garbage")
  proc = _run(_cmd(work, base / "data", xla_cache()))
  out = _summary(work)
  assert out["resumed_from"] == 2, proc.stderr[-2000:]
  # One line for the skipped step (and why), one for the step used.
  assert "checkpoint step 3 in" in proc.stderr and "unreadable" in proc.stderr
  assert "using checkpoint step 2 (skipped unreadable step(s) 3)" in proc.stderr
  assert "Event loop is closed" not in proc.stderr
  assert len(proc.stderr.splitlines()) < 40, proc.stderr[-3000:]
  # Resuming from step 2 replays steps 3-4 exactly.
  assert out["params_sha256"] == ref["params_sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("lr", ["1e30", "nan"])
def test_non_finite_step_stops_and_only_good_states_are_saved(straight, lr):
  # lr=1e30: the loss blows up after a few steps. lr=nan: loss and gradient
  # are finite, the update is not; it must not reach a checkpoint either.
  import jax
  import numpy as np

  from hybrik_jax.train import checkpointing

  base, _ = straight
  work = base / f"nonfinite_{lr}"
  proc = subprocess.run(
    _cmd(work, base / "data", xla_cache(), [f"--config.optimizer.lr={lr}"]),
    capture_output=True,
    text=True,
    env=_env(),
    cwd=ROOT,
    timeout=900,
  )
  out = proc.stderr + proc.stdout
  assert proc.returncode == 1, out[-3000:]
  assert "non-finite loss, gradient or update at step" in out
  assert "Traceback" not in out
  assert not (work / "summary.json").exists()
  steps = sorted(
    int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit()
  )
  assert not steps or steps[-1] < 4
  if lr == "nan":
    assert steps == [] and "update at step 1 " in out
  for step in steps:
    tree = checkpointing.restore_on_one_device(
      work / "checkpoints" / str(step) / "state"
    )
    leaves = jax.tree_util.tree_leaves(tree["params"])
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves), step


@pytest.mark.slow
def test_config_change_is_refused_unless_allowed(straight):
  """A rerun with another optimiser value is refused (exit 2, the value
  named, nothing changed on disk); --allow_config_change continues the
  run's checkpoints with it."""
  import shutil

  base, ref = straight
  work = base / "changed"
  shutil.copytree(base / "straight", work)
  saved = (work / "config.json").read_text()
  steps = sorted(p.name for p in (work / "checkpoints").iterdir())
  cmd = _cmd(work, base / "data", xla_cache(), ["--config.optimizer.lr=5e-4"])
  proc = subprocess.run(
    cmd, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=900
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and (
    "config.optimizer.lr: 0.001 -> 0.0005" in last
  ), last
  assert (work / "config.json").read_text() == saved
  assert sorted(p.name for p in (work / "checkpoints").iterdir()) == steps

  proc = _run(
    [
      *cmd,
      "--allow_config_change",
      "--config.num_epochs=2",
      "--config.max_steps=5",
    ]
  )
  assert "continuing with config changes: config.optimizer.lr" in (
    proc.stdout + proc.stderr
  )
  out = _summary(work)
  assert out["resumed_from"] == 4 and out["steps"] == 5
  assert out["resumed_params_sha256"] == ref["params_sha256"]
