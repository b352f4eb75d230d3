"""``parity.py`` on the original authors' camera checkpoints (Jeff-sjtu/HybrIK
``HRNetSMPLCam`` / ``Simple3DPoseBaseSMPLCam``) against their own PyTorch code.

The checkpoints are the recipe of ``tests/authors_recipe.py`` (calibrated
BatchNorm statistics), loaded into the authors' own model in the reference
venv and written with the real ``torch.save`` (``reference/run_authors.py
save``: the model's whole state_dict, ``smpl.*`` buffers included, as their
training code saves it). The authors' code is not part of this repository:
the tests marked ``authors_src`` need a checkout of it (``HYBRIK_AUTHORS_SRC``,
default /tmp/hybrik_src; see the README's "The authors' camera checkpoints")
and are skipped, with that reason, without one. The refusal of a missing
``--authors-src`` needs no checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from authors_recipe import build_state_dict
from helpers import REPO, golden, subprocess_env

from hybrik_jax.interop import parity

AUTHORS_SRC = Path(os.environ.get("HYBRIK_AUTHORS_SRC", "/tmp/hybrik_src"))
HAS_AUTHORS_SRC = (AUTHORS_SRC / "hybrik" / "models" / "builder.py").is_file()
SKIP_REASON = (
  f"needs a checkout of Jeff-sjtu/HybrIK at {AUTHORS_SRC} (set "
  "HYBRIK_AUTHORS_SRC; README: The authors' camera checkpoints)"
)
skip_without_src = pytest.mark.skipif(not HAS_AUTHORS_SRC, reason=SKIP_REASON)
HRNET, RESNET = parity.AUTHORS_ARCHS
# The container each recipe checkpoint is written in (both are accepted by
# the authors' demo path and by parity.py).
FORMATS = {HRNET: "model_dict", RESNET: "module"}


def _parity(*args):
  return subprocess.run(
    [sys.executable, str(REPO / "parity.py"), *map(str, args)],
    capture_output=True,
    text=True,
    env=subprocess_env(),
    cwd=REPO,
    timeout=900,
  )


def _save(refvenv, arch, state: dict, out: Path, fmt: str) -> Path:
  """``state`` loaded into the authors' model, written with torch.save."""
  npz = out.with_suffix(".npz")
  np.savez(npz, **state)
  subprocess.run(
    [
      str(refvenv / "bin" / "python"),
      str(REPO / "reference" / "run_authors.py"),
      "save",
      "--arch",
      arch,
      "--authors-src",
      str(AUTHORS_SRC),
      "--state",
      str(npz),
      "--out",
      str(out),
      "--format",
      fmt,
    ],
    check=True,
    capture_output=True,
    cwd=REPO,
    timeout=600,
  )
  npz.unlink()
  return out


def _perturbed(state: dict, seed: int) -> dict:
  """Every weight (not the BatchNorm statistics) x (1 + 0.01 U(-1, 1))."""
  rng = np.random.default_rng(seed)
  out = {}
  for k, v in state.items():
    if v.dtype.kind == "f" and not k.endswith(("running_mean", "running_var")):
      v = (v * (1.0 + 0.01 * rng.uniform(-1, 1, v.shape))).astype(v.dtype)
    out[k] = v
  return out


@pytest.fixture(scope="module")
def checkpoints(refvenv, module_tmp):
  """{arch: .pth} of the recipe, written by the authors' model."""
  if not HAS_AUTHORS_SRC:
    pytest.skip(SKIP_REASON)
  base = module_tmp.mktemp("authors_parity")
  return {
    arch: _save(
      refvenv, arch, build_state_dict(arch), base / f"{arch}.pth", fmt
    )
    for arch, fmt in FORMATS.items()
  }


def _rows(stdout: str, arch: str) -> dict[str, list[str]]:
  """The table's rows by output name (every row of the architecture)."""
  rows = {}
  for line in stdout.splitlines():
    cells = line.split()
    if cells and cells[0] in parity.AUTHORS_FLOORS[arch]:
      rows[cells[0]] = cells
  assert set(rows) == set(parity.AUTHORS_FLOORS[arch]), stdout
  return rows


@pytest.mark.slow
@pytest.mark.authors_src
@skip_without_src
@pytest.mark.parametrize("arch", [HRNET, RESNET])
def test_parity_holds_for_the_authors_checkpoints(checkpoints, arch, tmp_path):
  """HRNet-W48: a synthetic input with the flip test; ResNet-34: an image
  file and a box through the authors' crop (the picture of the demo
  goldens, tests/fixtures/authors/demo_resnet34_cam.npz)."""
  if arch == HRNET:
    how = ["--synthetic", 1, "--flip-test"]
    what = "1 synthetic input(s), seed 0, boxes + image centre, flip test"
  else:
    import cv2

    demo = golden(f"authors/demo_{arch}.npz")
    image = tmp_path / "person.png"
    cv2.imwrite(str(image), np.ascontiguousarray(demo["image_rgb"][..., ::-1]))
    x1, y1, x2, y2 = demo["tight_bbox_xyxy"]
    how = ["--images", image, "--bbox", f"{x1},{y1},{x2 - x1},{y2 - y1}"]
    what = "1 image(s), boxes + image centre"
  proc = _parity(checkpoints[arch], "--authors-src", AUTHORS_SRC, *how)
  print(proc.stdout)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  header = next(ln for ln in proc.stdout.splitlines() if "HybrIK (" in ln)
  assert f"hybrik-jax vs the authors' HybrIK ({arch}," in header
  assert header.endswith(f" on {what}"), header
  for name, cells in _rows(proc.stdout, arch).items():
    err, noise, tol = (float(c) for c in cells[1:4])
    assert cells[-1] == "yes" and err <= tol, cells
    # the tolerance is the tests' atol unless the reference is noisier here
    floor = parity.AUTHORS_FLOORS[arch][name]
    assert tol == pytest.approx(max(floor, 3 * noise), rel=0.02), cells
    assert noise > 0, cells  # the float64 run really ran in float64
  if arch == HRNET:  # update_scale refined the camera in the reference
    assert "update_scale (float32 reference): ok" in proc.stdout
  assert "parity holds on every output" in proc.stdout


@pytest.mark.slow
@pytest.mark.authors_src
@skip_without_src
def test_a_mismatched_conversion_fails_loudly(refvenv, checkpoints, tmp_path):
  """--converted from the recipe, CKPT = the recipe with every weight moved
  by up to 1%: exit 1 naming the first output; a conversion of the other
  architecture is refused before anything runs (exit 2)."""
  converted = tmp_path / "conv"
  proc = subprocess.run(
    [
      sys.executable,
      str(REPO / "convert_torch_weights.py"),
      str(checkpoints[RESNET]),
      str(converted),
    ],
    capture_output=True,
    text=True,
    env=subprocess_env(),
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr
  other = _save(
    refvenv,
    RESNET,
    _perturbed(build_state_dict(RESNET), seed=1),
    tmp_path / "perturbed.pth",
    "bare",
  )
  proc = _parity(
    other, "--converted", converted, "--synthetic", 1, "--authors-src",
    AUTHORS_SRC,
  )  # fmt: skip
  print(proc.stdout)
  assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "sha256 differs" in proc.stdout
  assert "FAILED: backbone_features" in proc.stdout
  rows = _rows(proc.stdout, RESNET)
  assert rows["backbone_features"][-1] == "NO"
  assert rows["transl"][-1] == "NO"

  proc = _parity(
    checkpoints[HRNET], "--converted", converted, "--authors-src",
    AUTHORS_SRC,
  )  # fmt: skip
  assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: --converted {converted} holds a resnet34_cam model; "
    f"{HRNET}.pth is a {HRNET} checkpoint"
  )


@pytest.fixture(scope="module")
def recipe_without_source(refvenv, module_tmp):
  """The ResNet-34-cam recipe as a bare ``module.``-prefixed state_dict,
  written by torch.save without the authors' code (reference/run_hybrik.py
  save; no smpl.* buffers: parity.py refuses before converting)."""
  base = module_tmp.mktemp("authors_nosrc")
  state = base / "state.npz"
  np.savez(state, **build_state_dict(RESNET))
  out = base / "resnet34_cam.pth"
  subprocess.run(
    [
      str(refvenv / "bin" / "python"),
      str(REPO / "reference" / "run_hybrik.py"),
      "save",
      "--state",
      str(state),
      "--out",
      str(out),
      "--format",
      "module",
    ],
    check=True,
    capture_output=True,
    cwd=REPO,
    timeout=600,
  )
  state.unlink()
  return out


def test_an_authors_checkpoint_needs_authors_src(recipe_without_source):
  ckpt = recipe_without_source
  proc = _parity(ckpt, "--synthetic", 1)
  assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: {ckpt.name} is the authors' resnet34_cam checkpoint, whose "
    "reference is their own PyTorch code: pass --authors-src DIR, a checkout "
    "of github.com/Jeff-sjtu/HybrIK (holding hybrik/ and configs/)"
  )
  # ... and a folder that is not such a checkout, by name
  proc = _parity(ckpt, "--authors-src", REPO)
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: --authors-src {REPO}: not a checkout of Jeff-sjtu/HybrIK "
    "(missing hybrik/models/builder.py)"
  )
  # the ResNet-34 model has no flip test; --data is mmhuman3d's pipeline
  proc = _parity(ckpt, "--flip-test", "--authors-src", REPO)
  assert proc.returncode == 2
  assert "--flip-test is defined for the authors' hrnet_w48_cam only" in (
    proc.stderr
  )
  proc = _parity(ckpt, "--data", "x.npz")
  assert proc.returncode == 2
  assert "--data is for mmhuman3d's checkpoints" in proc.stderr
