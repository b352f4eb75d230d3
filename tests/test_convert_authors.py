"""convert_torch_weights.py on the authors' HybrIK camera checkpoints (#15).

The authors' checkpoints (Jeff-sjtu/HybrIK model zoo) are written here
without torch (tests/torch_writer.py) from the recipe state_dict of
tests/authors_recipe.py plus ``smpl.*`` buffers in the authors' layout made
from the synthetic SMPL model, in the containers the authors' code reads: a
bare ``OrderedDict`` state_dict, ``module.``-prefixed, or ``{'model': sd}``
(unwrapped only when the container is exactly a ``dict``, as their demo does).
"""

from __future__ import annotations

import collections
import contextlib
import io
import sys
from pathlib import Path

import checkpoint_recipe
import numpy as np
import pytest
import torch_writer as tw
from authors_recipe import build_state_dict

from hybrik_jax.interop import authors_mapping as am
from hybrik_jax.interop import convert
from hybrik_jax.interop.weight_mapping import WeightMappingError
from hybrik_jax.train import checkpointing

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import convert_torch_weights  # noqa: E402

RESNET = am.RESNET34_CAM
HRNET = am.HRNET_W48_CAM


def authors_smpl_buffers(smpl_pkl: Path) -> dict[str, np.ndarray]:
  """The authors' SMPL_layer buffers for the synthetic body (their names:
  ``J_regressor_h36m``, no ``tpose_joints`` / ``vertex_joint_selector``)."""
  mm = checkpoint_recipe.smpl_buffers(smpl_pkl)
  out = {
    k: v for k, v in mm.items() if k in {f"smpl.{n}" for n in am.SMPL_BUFFERS}
  }
  out["smpl.J_regressor_h36m"] = mm["smpl.joints_regressor_extra"]
  return out


@pytest.fixture(scope="module")
def resnet_sd(smpl_pkl):
  sd = collections.OrderedDict(build_state_dict(RESNET))
  sd.update(authors_smpl_buffers(smpl_pkl))
  return sd


def _convert(src: Path, out: Path) -> tuple[int, str]:
  buf = io.StringIO()
  with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
    rc = convert_torch_weights.main([str(src), str(out)])
  return rc, buf.getvalue()


@pytest.mark.parametrize("container", ["bare", "module", "model_dict"])
def test_resnet34_cam_converts_and_loads(
  tmp_path, resnet_sd, smpl_model, container
):
  if container == "bare":
    obj = resnet_sd
  elif container == "module":
    obj = collections.OrderedDict(
      ("module." + k, v) for k, v in resnet_sd.items()
    )
  else:
    obj = {"model": resnet_sd, "epoch": 3}
  src = tmp_path / "hybrik_res34_cam.pth"
  tw.save(obj, src)
  rc, text = _convert(src, tmp_path / "out")
  assert rc == 0, text
  assert f"architecture: {RESNET}" in text
  report = convert.load_report(tmp_path / "out")
  assert report["architecture"] == RESNET
  assert report["kind"] == "authors_hybrik_resnet34_cam"
  assert report["module_prefix_stripped"] == (container == "module")
  n_smpl = len(am.SMPL_BUFFERS)
  assert report["tensors"]["ignored_smpl"] == n_smpl
  assert report["smpl_neutral"]["has_J_regressor_extra"]

  want = am.state_dict_to_variables(resnet_sd, arch=RESNET)
  got = convert.load_converted(tmp_path / "out")
  flat_w = _flat(want)
  flat_g = _flat(got)
  assert sorted(flat_g) == sorted(flat_w)
  for k, v in flat_w.items():
    np.testing.assert_array_equal(np.asarray(flat_g[k]), v, err_msg=k)

  # The inference loader says which model to build and attaches the body
  # model from the checkpoint's own buffers.
  variables, info = checkpointing.load_inference_checkpoint(tmp_path / "out")
  assert info["architecture"] == RESNET and info["step"] is None
  smpl = variables["constants"]["smpl"]
  from hybrik_jax.model.hybrik import body_model_constants

  want_smpl = body_model_constants(smpl_model)
  for k in (
    "v_template",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "J_regressor_extra",
  ):
    np.testing.assert_allclose(
      np.asarray(smpl[k]),
      np.asarray(want_smpl[k]),
      rtol=0,
      atol=1e-7,
      err_msg=k,
    )


def test_ordered_dict_with_model_key_is_not_unwrapped(tmp_path, resnet_sd):
  """The authors unwrap ``save_dict['model']`` only for an exact dict: an
  OrderedDict with a 'model' entry is a (broken) state_dict, refused."""
  src = tmp_path / "od.pth"
  tw.save(collections.OrderedDict(model=resnet_sd), src)
  rc, text = _convert(src, tmp_path / "out")
  assert rc == 2
  assert "od.pth" in text and "'model'" in text


def test_mismatched_authors_checkpoint_lists_every_problem(tmp_path, resnet_sd):
  sd = collections.OrderedDict(resnet_sd)
  del sd["fc1.weight"]
  sd["deccam.bias"] = np.zeros(5, np.float32)
  sd["extra.weight"] = np.zeros(2, np.float32)
  src = tmp_path / "bad.pth"
  tw.save(sd, src)
  with pytest.raises(WeightMappingError) as e:
    convert.convert_checkpoint(src, tmp_path / "out")
  msg = str(e.value)
  assert str(src) in msg
  assert "missing key 'fc1.weight'" in msg
  assert "'deccam.bias': shape [5]" in msg
  assert "unexpected key 'extra.weight'" in msg
  assert not (tmp_path / "out").exists()
  rc, text = _convert(src, tmp_path / "out")
  assert rc == 2 and "3 problem" in text, text


def test_preact_checkpoint_without_camera_is_refused(tmp_path):
  src = tmp_path / "nocam.pth"
  tw.save({"preact.conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}, src)
  rc, text = _convert(src, tmp_path / "out")
  assert rc == 2
  assert "neither of the authors' camera models" in text


def test_detect_architecture():
  hr = {k: 0 for k in (e.torch_key for e in am.entries(HRNET))}
  rn = {k: 0 for k in (e.torch_key for e in am.entries(RESNET))}
  mm = {"backbone.conv1.weight": 0, "head.fc1.weight": 0}
  assert convert.detect_architecture(hr) == HRNET
  assert convert.detect_architecture(rn) == RESNET
  assert convert.detect_architecture(mm) == convert.MMHUMAN3D_RESNET34
  assert convert.detect_architecture({"conv1.weight": 0}) is None
  assert convert.architecture_of({}) == convert.MMHUMAN3D_RESNET34
  assert convert.architecture_of({"architecture": HRNET}) == HRNET
  with pytest.raises(convert.ConversionError, match="'vit_h'"):
    convert.architecture_of({"architecture": "vit_h"})


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    key = f"{prefix}/{k}"
    if isinstance(v, dict):
      out.update(_flat(v, key))
    else:
      out[key] = np.asarray(v)
  return out
