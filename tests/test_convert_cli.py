"""Tests for hybrik_jax.interop.convert and the convert_torch_weights.py CLI.

Full-size mmhuman3d-like checkpoints are written without torch by
tests/torch_writer.py (checked byte for byte against a real torch.save file in
test_torch_format.py): the recipe state_dict (tests/checkpoint_recipe.py) plus
``smpl.*`` buffers made from the synthetic SMPL model, in mmcv's container.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import checkpoint_recipe
import jax
import numpy as np
import pytest
import torch_writer as tw
from conftest import FIXTURES, golden

from hybrik_jax import smpl as smpl_lib
from hybrik_jax.interop import convert, weight_mapping
from hybrik_jax.smpl import io as smpl_io

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / "convert_torch_weights.py"
sys.path.insert(0, str(REPO))
import convert_torch_weights  # noqa: E402

NUM_TRAINABLE = 27_589_816  # spec §3.2: backbone 21,284,672 + head 6,305,144
NUM_MAPPED = 206  # backbone 180 + head 26 tensors (no num_batches_tracked)


# -----------------------------------------------------------------------------
# Building checkpoints.
# -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def state_dict(smpl_pkl):
  return checkpoint_recipe.full_state_dict(smpl_pkl)


@pytest.fixture(scope="module")
def ckpt(module_tmp, state_dict):
  path = module_tmp.mktemp("ckpt") / "resnet34_hybrik_recipe.pth"
  tw.save(checkpoint_recipe.mmcv_container(state_dict), path)
  return path


@pytest.fixture(scope="module")
def converted(module_tmp, ckpt):
  """Runs the CLI once on the full checkpoint; returns (out_dir, stdout)."""
  out = module_tmp.mktemp("conv") / "hybrik_resnet34"
  import contextlib
  import io

  buf = io.StringIO()
  with contextlib.redirect_stdout(buf):
    rc = convert_torch_weights.main([str(ckpt), str(out)])
  assert rc == 0
  return out, buf.getvalue()


def assert_trees_equal(got, want, path=""):
  assert isinstance(got, dict) and isinstance(want, dict), path
  assert sorted(got) == sorted(want), path
  for k in want:
    if isinstance(want[k], dict):
      assert_trees_equal(got[k], want[k], f"{path}/{k}")
    else:
      g, w = np.asarray(got[k]), np.asarray(want[k])
      assert g.dtype == w.dtype and g.shape == w.shape, f"{path}/{k}"
      np.testing.assert_array_equal(g, w, err_msg=f"{path}/{k}")


def run_cli(*args) -> tuple[int, str, str]:
  """Runs convert_torch_weights.main in-process; returns (rc, out, err)."""
  import contextlib
  import io

  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    rc = convert_torch_weights.main([str(a) for a in args])
  return rc, out.getvalue(), err.getvalue()


def assert_clean_failure(rc: int, err: str, out_dir: Path, *needles: str):
  assert rc == 2
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), err
  assert "Traceback" not in err
  for needle in needles:
    assert needle in lines[0], (needle, lines[0])
  assert not out_dir.exists()
  leftovers = [
    p.name
    for p in out_dir.parent.iterdir()
    if p.name.startswith(f".{out_dir.name}.")
  ]
  assert not leftovers, leftovers


# -----------------------------------------------------------------------------
# Successful conversion.
# -----------------------------------------------------------------------------


def test_writer_round_trip_full_checkpoint(ckpt, state_dict):
  from hybrik_jax.interop.torch_format import load_torch_checkpoint

  obj = load_torch_checkpoint(ckpt)
  assert sorted(obj) == ["meta", "state_dict"]
  assert list(obj["state_dict"]) == list(state_dict)
  for k, v in state_dict.items():
    assert obj["state_dict"][k].dtype == v.dtype, k
    np.testing.assert_array_equal(obj["state_dict"][k], v, err_msg=k)


def test_cli_output_folder(converted):
  out, stdout = converted
  assert sorted(os.listdir(out)) == [
    "report.json",
    "smpl_neutral.npz",
    "variables",
  ]
  assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
  assert "27,589,816 trainable parameters" in stdout
  assert "13668 faces" in stdout


def test_converted_variables_match_mapping(converted, state_dict):
  out, _ = converted
  got = convert.load_converted(out)
  want = weight_mapping.state_dict_to_variables(state_dict)
  assert_trees_equal(got, want)
  assert sorted(got) == ["batch_stats", "constants", "params"]
  n_params = sum(int(np.size(x)) for x in _leaves(got["params"]))
  assert n_params == NUM_TRAINABLE
  # Spot checks of the layout conversion, independent of the mapping module.
  np.testing.assert_array_equal(
    got["params"]["backbone"]["conv1"]["kernel"],
    state_dict["backbone.conv1.weight"].transpose(2, 3, 1, 0),
  )
  np.testing.assert_array_equal(
    got["params"]["head"]["fc1"]["kernel"], state_dict["head.fc1.weight"].T
  )
  np.testing.assert_array_equal(
    got["constants"]["init_shape"],
    np.load(FIXTURES / "h36m_mean_beta.npy").astype(np.float32),
  )


def _leaves(tree):
  if isinstance(tree, dict):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield tree


def test_report(converted, ckpt, state_dict):
  out, _ = converted
  report = json.loads((out / "report.json").read_text())
  assert report == convert.load_report(out)
  assert report["kind"] == "mmhuman3d_hybrik_resnet34"
  assert report["source"]["file"] == ckpt.name
  assert (
    report["source"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
  )
  assert report["source"]["bytes"] == ckpt.stat().st_size
  assert report["meta"] == {
    "mmhuman3d_version": "0.11.0",
    "mmcv_version": "1.5.3",
    "epoch": 100,
    "iter": 123400,
    "seed": 0,
    "time": "Fri Feb 11 12:00:00 2022",
  }
  assert report["container_keys"] == ["meta", "state_dict"]
  assert report["module_prefix_stripped"] is False
  n_smpl = sum(k.startswith("smpl.") for k in state_dict)
  n_nbt = sum(k.endswith("num_batches_tracked") for k in state_dict)
  assert (n_smpl, n_nbt) == (11, 39)
  assert report["tensors"] == {
    "total": len(state_dict),
    "mapped": NUM_MAPPED,
    "ignored": n_smpl + n_nbt,
    "ignored_smpl": n_smpl,
    "ignored_num_batches_tracked": n_nbt,
  }
  assert report["variables"]["arrays"] == NUM_MAPPED
  assert report["variables"]["params"] == NUM_TRAINABLE
  assert report["smpl_neutral"] == {
    "file": "smpl_neutral.npz",
    "num_vertices": 6890,
    "num_faces": 13668,
    "num_betas": 10,
    "has_J_regressor_extra": True,
  }
  import hybrik_jax

  assert report["hybrik_jax_version"] == hybrik_jax.__version__


def test_smpl_npz_official_layout(converted, smpl_pkl, state_dict):
  out, _ = converted
  raw = smpl_io.load_raw_dict(smpl_pkl)
  with np.load(out / "smpl_neutral.npz", allow_pickle=False) as npz:
    got = {k: npz[k] for k in npz.files}
  assert sorted(got) == sorted(
    [
      "v_template",
      "shapedirs",
      "posedirs",
      "J_regressor",
      "weights",
      "f",
      "kintree_table",
      "J_regressor_extra",
    ]
  )
  assert got["posedirs"].shape == (6890, 3, 207)
  for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
    assert got[key].dtype == np.float32, key
    np.testing.assert_array_equal(
      got[key],
      np.asarray(raw[key], np.float32)[..., : got[key].shape[-1]]
      if key == "shapedirs"
      else np.asarray(raw[key], np.float32),
      err_msg=key,
    )
  assert got["f"].dtype == np.uint32
  np.testing.assert_array_equal(got["f"], raw["f"])
  assert got["kintree_table"].dtype == np.int64
  np.testing.assert_array_equal(got["kintree_table"], raw["kintree_table"])
  assert got["kintree_table"][0, 0] == 4294967295
  np.testing.assert_array_equal(
    got["J_regressor_extra"], state_dict["smpl.joints_regressor_extra"]
  )


def test_smpl_npz_loads_and_runs(converted, state_dict):
  out, _ = converted
  model = smpl_lib.load_model(out / "smpl_neutral.npz")
  np.testing.assert_array_equal(model.v_template, state_dict["smpl.v_template"])
  np.testing.assert_array_equal(model.shapedirs, state_dict["smpl.shapedirs"])
  np.testing.assert_array_equal(model.posedirs, state_dict["smpl.posedirs"])
  np.testing.assert_array_equal(
    model.J_regressor, state_dict["smpl.J_regressor"]
  )
  np.testing.assert_array_equal(
    model.lbs_weights, state_dict["smpl.lbs_weights"]
  )
  np.testing.assert_array_equal(model.faces, state_dict["smpl.faces_tensor"])
  np.testing.assert_array_equal(
    model.J_regressor_extra, state_dict["smpl.joints_regressor_extra"]
  )
  # The extracted model reproduces smplx's outputs (golden, float32 ref).
  g = golden("golden_smpl.npz")
  res = jax.jit(smpl_lib.forward)(
    model, g["betas"], g["body_pose"], g["global_orient"], g["transl"]
  )
  np.testing.assert_allclose(res["vertices"], g["vertices"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(res["joints"], g["joints24"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(
    res["joints_extra"], g["joints_h36m17"], atol=1e-5, rtol=0
  )


@pytest.mark.slow
def test_module_prefix_bare_state_dict_without_smpl(tmp_path, state_dict):
  """A bare, DataParallel-prefixed state_dict without smpl.* buffers."""
  sd = collections.OrderedDict(
    ("module." + k, v)
    for k, v in state_dict.items()
    if not k.startswith("smpl.")
  )
  path = tmp_path / "bare.pth"
  tw.save(sd, path)
  out = tmp_path / "out"
  report = convert.convert_checkpoint(path, out)
  assert report["module_prefix_stripped"] is True
  assert report["smpl_neutral"] is None
  assert "meta" not in report
  assert report["tensors"]["mapped"] == NUM_MAPPED
  assert sorted(os.listdir(out)) == ["report.json", "variables"]
  got = convert.load_converted(out)
  np.testing.assert_array_equal(
    got["params"]["head"]["decphi"]["kernel"],
    state_dict["head.decphi.weight"].T,
  )
  np.testing.assert_array_equal(
    got["batch_stats"]["backbone"]["layer4_2"]["bn2"]["var"],
    state_dict["backbone.layer4.2.bn2.running_var"],
  )


@pytest.mark.slow
def test_legacy_format_checkpoint(tmp_path, state_dict, converted):
  """A publish_model-style file (torch.save, legacy non-zip format)."""
  path = tmp_path / "resnet34_hybrik_mixed-legacy.pth"
  tw.save_legacy(
    checkpoint_recipe.mmcv_container(state_dict, optimizer=True), path
  )
  out = tmp_path / "out"
  rc, stdout, err = run_cli(path, out)
  assert rc == 0, err
  assert_trees_equal(
    convert.load_converted(out), convert.load_converted(converted[0])
  )
  report = convert.load_report(out)
  assert report["container_keys"] == ["meta", "optimizer", "state_dict"]
  with (
    np.load(out / "smpl_neutral.npz") as got,
    np.load(converted[0] / "smpl_neutral.npz") as want,
  ):
    assert sorted(got.files) == sorted(want.files)
    for key in want.files:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_overwrite(tmp_path, ckpt, converted):
  out = tmp_path / "existing"
  shutil.copytree(converted[0], out)  # a previous conversion
  (out / "report.json").write_text("{}")
  rc, _, err = run_cli(ckpt, out)
  assert rc == 2 and "previous conversion" in err and "--overwrite" in err
  assert (out / "report.json").read_text() == "{}"
  rc, stdout, err = run_cli(ckpt, out, "--overwrite")
  assert rc == 0, err
  assert sorted(os.listdir(out)) == [
    "report.json",
    "smpl_neutral.npz",
    "variables",
  ]
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
  assert_trees_equal(
    convert.load_converted(out), convert.load_converted(converted[0])
  )


# -----------------------------------------------------------------------------
# torchvision backbone weights.
# -----------------------------------------------------------------------------


def test_torchvision(tmp_path, state_dict, ckpt):
  tv = collections.OrderedDict(
    (k[len("backbone.") :], v)
    for k, v in state_dict.items()
    if k.startswith("backbone.")
  )
  tv["fc.weight"] = np.full((1000, 512), 0.5, np.float32)
  tv["fc.bias"] = np.zeros(1000, np.float32)
  path = tmp_path / "resnet34-b627a593.pth"
  tw.save(tv, path)
  out = tmp_path / "tv"
  rc, stdout, err = run_cli(path, out, "--torchvision")
  assert rc == 0, err
  got = convert.load_converted(out)
  assert_trees_equal(got, weight_mapping.torchvision_resnet34_to_backbone(tv))
  np.testing.assert_array_equal(
    got["params"]["conv1"]["kernel"],
    state_dict["backbone.conv1.weight"].transpose(2, 3, 1, 0),
  )
  report = convert.load_report(out)
  assert report["kind"] == "torchvision_resnet34"
  assert report["tensors"] == {"total": 218, "mapped": 180, "ignored": 38}
  assert report["variables"]["params"] == 21_284_672
  assert sorted(os.listdir(out)) == ["report.json", "variables"]
  # The wrong mode for either file is a clear error.
  rc, _, err = run_cli(path, tmp_path / "tv2")
  assert_clean_failure(rc, err, tmp_path / "tv2", "--torchvision", path.name)
  rc, _, err = run_cli(ckpt, tmp_path / "tv3", "--torchvision")
  assert_clean_failure(rc, err, tmp_path / "tv3", "without --torchvision")


# -----------------------------------------------------------------------------
# Errors: one line, exit code 1, no output folder.
# -----------------------------------------------------------------------------


def test_error_not_a_checkpoint(tmp_path):
  path = tmp_path / "notes.pth"
  path.write_bytes(b"this is not a checkpoint\n" * 40)
  out = tmp_path / "out"
  rc, _, err = run_cli(path, out)
  assert_clean_failure(rc, err, out, str(path), "not a torch checkpoint")


def test_error_missing_file(tmp_path):
  out = tmp_path / "out"
  rc, _, err = run_cli(tmp_path / "nope.pth", out)
  assert_clean_failure(rc, err, out, "nope.pth", "No such file")


def test_error_truncated(tmp_path, ckpt):
  path = tmp_path / "cut.pth"
  with open(ckpt, "rb") as f:
    path.write_bytes(f.read(3_000_000))
  out = tmp_path / "out"
  rc, _, err = run_cli(path, out)
  assert_clean_failure(rc, err, out, str(path), "truncated")


def test_error_malicious(tmp_path):
  marker = tmp_path / "pwned"
  data_pkl, _ = tw.dumps_data_pkl(
    {"state_dict": tw.Call(tw.Global("os", "system"), f"touch {marker}")}
  )
  path = tmp_path / "evil.pth"
  tw.save({}, path, data_pkl=data_pkl)
  out = tmp_path / "out"
  rc, _, err = run_cli(path, out)
  assert_clean_failure(rc, err, out, "os.system", "refusing")
  assert not marker.exists()


def test_overwrite_never_empties_a_folder_of_other_files(tmp_path, ckpt):
  """--overwrite on a folder the converter did not write: refused, through
  the real entry point, and nothing on disk changes."""
  out = tmp_path / "thesis"
  (out / "sub").mkdir(parents=True)
  (out / "thesis.txt").write_text("years of work")
  (out / "sub" / "data.csv").write_text("1,2\n")
  before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
  proc = subprocess.run(
    [sys.executable, str(CLI), str(ckpt), str(out), "--overwrite"],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 2
  err = proc.stderr.strip().splitlines()
  assert err[-1].startswith(f"error: {out}: folder holds files that are not")
  assert "Traceback" not in proc.stderr
  assert (out / "thesis.txt").read_text() == "years of work"
  assert (out / "sub" / "data.csv").read_text() == "1,2\n"
  assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_error_resnet50_like(tmp_path):
  """A Bottleneck (ResNet-50-like) HybrIK checkpoint is refused clearly."""
  sd = collections.OrderedDict()
  sd["backbone.conv1.weight"] = np.zeros((64, 3, 7, 7), np.float32)
  for i in range(3):
    for c, (o, k) in enumerate(((64, 1), (64, 3), (256, 1)), start=1):
      sd[f"backbone.layer1.{i}.conv{c}.weight"] = np.zeros(
        (o, 64 if c < 3 or i else 64, k, k), np.float32
      )
  sd["head.fc1.weight"] = np.zeros((1024, 2048), np.float32)
  path = tmp_path / "resnet50_hybrik.pth"
  tw.save({"meta": {}, "state_dict": sd}, path)
  out = tmp_path / "out"
  rc, _, err = run_cli(path, out)
  assert_clean_failure(rc, err, out, "Bottleneck", "ResNet-50", path.name)


def test_error_wrong_shapes_lists_problems(tmp_path, state_dict):
  """Missing / mis-shaped / unexpected keys: one line naming the count."""
  sd = {k: v for k, v in state_dict.items() if not k.startswith("smpl.")}
  del sd["head.decphi.bias"]
  sd["head.decshape.weight"] = np.zeros((24, 1024), np.float32)
  sd["head.deccam_extra.weight"] = np.zeros((3, 1024), np.float32)
  path = tmp_path / "other.pth"
  tw.save({"state_dict": sd}, path)
  out = tmp_path / "out"
  rc, _, err = run_cli(path, out)
  assert_clean_failure(rc, err, out, "3 problem(s)", "--verbose")
  with pytest.raises(weight_mapping.WeightMappingError) as info:
    convert.convert_checkpoint(path, out)
  message = str(info.value)
  for needle in (
    "head.decphi.bias",
    "head.decshape.weight",
    "[24, 1024]",
    "head.deccam_extra.weight",
  ):
    assert needle in message
  assert not out.exists()


def test_error_no_state_dict(tmp_path):
  path = tmp_path / "optim.pth"
  tw.save({"optimizer": {"state": {}}, "meta": {"epoch": 1}}, path)
  out = tmp_path / "out"
  rc, _, err = run_cli(path, out)
  assert_clean_failure(rc, err, out, "no 'state_dict'")


def test_error_bad_smpl_buffers(tmp_path, state_dict):
  sd = dict(state_dict)
  sd["smpl.posedirs"] = np.zeros((207, 100), np.float32)
  path = tmp_path / "badsmpl.pth"
  tw.save({"state_dict": sd}, path)
  out = tmp_path / "out"
  rc, _, err = run_cli(path, out)
  assert_clean_failure(
    rc, err, out, "smpl.posedirs", "[207, 100]", "[207, 20670]"
  )
  del sd["smpl.posedirs"]
  with pytest.raises(convert.ConversionError, match="missing.*smpl.posedirs"):
    convert.smpl_arrays_from_state_dict(sd, "x.pth")


def test_cli_subprocess_exit_code(tmp_path):
  """The script itself: exit status 2 and one stderr line, no traceback."""
  path = tmp_path / "random.pth"
  path.write_bytes(np.random.default_rng(0).bytes(1000))
  out = tmp_path / "out"
  proc = subprocess.run(
    [sys.executable, str(CLI), str(path), str(out)],
    capture_output=True,
    text=True,
    cwd=REPO,
    check=False,
    timeout=120,
  )
  assert_clean_failure(proc.returncode, proc.stderr, out, str(path))
  assert proc.stdout == ""
