"""Every command in README.md runs (documentation cannot drift).

The commands are extracted from the README's fenced ``bash`` blocks and run
in README order, in a copy of the repository (so nothing is written into
the checkout), on the synthetic data with tiny sizes: each command gets the
extra arguments of the first rule in ``RULES`` that matches it, and the
placeholders a user replaces (``/path/to/mmhuman3d/data``, ``DIR``, the
released checkpoint's file name, ...) are mapped to files this test makes
in mmhuman3d's layout from the synthetic dataset and the recipe checkpoint.
A README command that no rule knows fails the test, so a new command must
be taught here (and so is run) before it can be documented.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch_writer
from checkpoint_recipe import full_state_dict, mmcv_container

ROOT = Path(__file__).resolve().parents[1]

# Tiny sizes for the synthetic dataset and the training runs.
TINY_DATA = [
  "--config.data.synthetic.num_train=6",
  "--config.data.synthetic.num_test=2",
]
TINY_TRAIN = [
  "--config.model.image_size=64",
  "--config.per_device_batch_size=2",
  "--config.max_steps=2",
  "--config.log_every_steps=1",
  "--config.data.eval_batch_size=2",
  "--config.data.worker_count=0",
]

# (command prefix, extra arguments); first match wins.
RULES = [
  ("bash scripts/run_synthetic.sh", TINY_TRAIN + TINY_DATA),
  (
    "python train.py --config configs/mixed.py",
    TINY_TRAIN
    + ["--config.model.backbone_init=pretrained/resnet34-b627a593.pth"],
  ),
  # The authors' HRNet camera recipe: the shallow HRNet-W48 (the full one
  # takes minutes to compile on a CPU; tests/test_cam_train.py).
  (
    "python train.py --config configs/hrnet_w48_cam.py:synthetic",
    TINY_TRAIN + TINY_DATA + ["--config.model.backbone=hrnet_w48_shallow"],
  ),
  (
    "python train.py --config configs/hrnet_w48_cam.py",
    TINY_TRAIN + ["--config.model.backbone=hrnet_w48_shallow"],
  ),
  (
    "python evaluate.py --config configs/mixed.py",
    ["--config.data.eval_batch_size=2"],
  ),
  (
    "python evaluate.py --config configs/synthetic.py",
    ["--config.model.image_size=64", "--batch_size=2"],
  ),
  ("python convert_torch_weights.py", []),
  ("python demo.py", ["--batch-size=1", "--no-progress"]),
  ("python -m hybrik_jax.demo.body_demo", ["--num=1"]),
  (
    "for c in h36m mpi_inf_3dhp coco pw3d; do python -m hybrik_jax.data.build_tfds",
    [],
  ),
]
# The test command itself is what runs this test (CI runs it).
NOT_RUN = {"bash scripts/test.sh": "runs this test suite (.ci/run)"}


def readme_commands(text: str) -> list[str]:
  """Logical command lines of the fenced ``bash`` blocks, comments dropped."""
  commands = []
  for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
    block = re.sub(r"\\\n\s*", "", block)  # join continuation lines
    for line in block.splitlines():
      line = re.sub(r"\s{2,}#.*$", "", line).strip()
      if line and not line.startswith("#"):
        commands.append(line)
  return commands


def _rule(command: str):
  for prefix, extra in RULES:
    if command.startswith(prefix):
      return extra
  return None


def test_every_readme_command_has_a_rule():
  commands = readme_commands((ROOT / "README.md").read_text())
  assert "bash scripts/run_synthetic.sh" in commands
  unknown = [c for c in commands if c not in NOT_RUN and _rule(c) is None]
  assert not unknown, f"README commands no rule runs: {unknown}"
  assert (
    (ROOT / ".ci" / "run").read_text().strip().endswith("bash scripts/test.sh")
  )


def _copy_repo(dst: Path) -> None:
  files = subprocess.run(
    ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=True,
  ).stdout.split()
  for f in files:
    src = ROOT / f
    if src.is_file():
      (dst / f).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(src, dst / f)
  # The environment scripts/setup.sh made; setup.sh sees it is current.
  (dst / ".venv").symlink_to(ROOT / ".venv")


def _copy_as(src: Path, dst: Path, dataset: str) -> None:
  """A copy of HumanData ``src`` whose 'config' entry says ``dataset`` (as
  mmhuman3d's converter for that dataset writes it)."""
  from hybrik_jax.data.human_data import load_human_data, save_human_data

  hd = load_human_data(src)
  data = {k: hd[k] for k in hd}
  data["config"] = dataset
  save_human_data(dst, data)


def _mmhuman3d_data(root: Path, synthetic: Path, assets: Path) -> None:
  """mmhuman3d's data/ layout, filled from the synthetic dataset."""
  ann = root / "preprocessed_datasets"
  ann.mkdir(parents=True)
  for name, npz in (
    ("h36m", "hybrik_h36m_train.npz"),
    ("mpi_inf_3dhp", "hybrik_mpi_inf_3dhp_train.npz"),
    ("coco", "hybrik_coco_2017_train.npz"),
    ("pw3d", "hybrik_pw3d_train.npz"),  # configs/hrnet_w48_cam.py's
  ):
    _copy_as(synthetic / "synthetic_train.npz", ann / npz, name)
    shutil.copytree(synthetic / "images", root / "datasets" / name / "images")
  shutil.copy(synthetic / "synthetic_test.npz", ann / "hybrik_pw3d_test.npz")
  shutil.copytree(
    synthetic / "images",
    root / "datasets" / "pw3d" / "images",
    dirs_exist_ok=True,
  )
  smpl = root / "body_models" / "smpl"
  smpl.mkdir(parents=True)
  with gzip.open(assets / "SMPL_NEUTRAL.pkl.gz") as f:
    (smpl / "SMPL_NEUTRAL.pkl").write_bytes(f.read())
  for f in ("J_regressor_h36m.npy", "h36m_mean_beta.npy"):
    shutil.copy(assets / f, root / "body_models" / f)


def _checkpoints(repo: Path, mmdata: Path, smpl_pkl: Path) -> None:
  """The released checkpoint's stand-in (the fixture recipe, mmcv layout)
  and torchvision's ImageNet ResNet-34 stand-in (its backbone part)."""
  state_dict = full_state_dict(smpl_pkl)
  torch_writer.save(
    mmcv_container(state_dict),
    repo / "resnet34_hybrik_mixed-a61b3c9c_20220211.pth",
  )
  tv = {
    k[len("backbone.") :]: v
    for k, v in state_dict.items()
    if k.startswith("backbone.")
  }
  (mmdata / "pretrained").mkdir()
  torch_writer.save(tv, mmdata / "pretrained" / "resnet34-b627a593.pth")


@pytest.mark.slow
def test_readme_commands_run(tmp_path, smpl_pkl):
  repo, mmdata, tfds_dir = (
    tmp_path / "repo",
    tmp_path / "mmdata",
    tmp_path / "tfds",
  )
  repo.mkdir()
  _copy_repo(repo)
  commands = readme_commands((ROOT / "README.md").read_text())
  placeholders = {
    "/path/to/mmhuman3d/data": str(mmdata),
    "/path/to/data": str(mmdata),
    "--data_dir=DIR": f"--data_dir={tfds_dir}",
    "--config.data.tfds_data_dir=DIR": f"--config.data.tfds_data_dir={tfds_dir}",
    "img.jpg": "data/synthetic/images/000007.jpg",
    "data/synthetic/images/000401.jpg": "data/synthetic/images/000007.jpg",
  }
  env = dict(
    os.environ,
    PYTHONPATH=str(repo),
    HYBRIK_JAX_HUGEPAGES="0",
    RUN="runs/synthetic",
  )
  env["PATH"] = f"{repo / '.venv' / 'bin'}:{env['PATH']}"
  ran = []
  for command in commands:
    if command in NOT_RUN:
      continue
    extra = _rule(command)
    for old, new in placeholders.items():
      command = command.replace(old, new)
    if command.startswith("for "):
      command = command.replace("; done", " " + " ".join(extra) + "; done")
    else:
      command = command + " " + " ".join(extra)
    proc = subprocess.run(
      ["bash", "-c", command],
      cwd=repo,
      env=env,
      capture_output=True,
      text=True,
      timeout=1200,
    )
    assert proc.returncode == 0, (
      f"README command failed: {command}\n{proc.stdout[-3000:]}\n"
      f"{proc.stderr[-3000:]}"
    )
    ran.append(command)
    if command.startswith("bash scripts/run_synthetic.sh"):
      # The main command made the synthetic data: lay out mmhuman3d's data/.
      _mmhuman3d_data(
        mmdata, repo / "data" / "synthetic", repo / "hybrik_jax" / "assets"
      )
      _checkpoints(repo, mmdata, smpl_pkl)
  assert len(ran) == len(commands) - len([c for c in commands if c in NOT_RUN])
  assert (repo / "runs" / "synthetic" / "eval" / "metrics.json").exists()
  assert (repo / "converted" / "hybrik" / "report.json").exists()
