"""Bad values in HumanData files: found per sample, failed on or skipped.

Small files are copies of the synthetic dataset (``synthetic_dir``: 4 train
samples in the h36m layout, mm; 2 test samples in the pw3d layout, m) with
one value broken, or hand-built COCO-layout files.
"""

from __future__ import annotations

import copy
import logging
import pickle

import numpy as np
import pytest

from hybrik_jax.data import pipeline, sample_checks, sources
from hybrik_jax.data.annotations import HybrIKAnnotations
from hybrik_jax.data.human_data import (
  HumanDataError,
  load_human_data,
  save_human_data,
)
from hybrik_jax.data.sample_checks import BadSamplesError

# ----------------------------------------------------------------------------
# Building files.
# ----------------------------------------------------------------------------


def _full(path) -> dict:
  """A HumanData file as a dict save_human_data takes (190-joint keypoints)."""
  hd = load_human_data(path)
  return {k: copy.deepcopy(hd[k]) for k in hd}


def _per_sample(data: dict, n: int):
  """(container, key) of every per-sample array/list, sub-dicts included."""
  for key, value in data.items():
    if isinstance(value, dict):
      yield from _per_sample(value, n)
    elif isinstance(value, (list, np.ndarray)) and len(value) == n:
      if not key.endswith("_mask"):
        yield data, key


def _insert(data: dict, pos: int, src: int) -> dict:
  """A copy of ``data`` with sample ``src`` repeated at position ``pos``."""
  data = copy.deepcopy(data)
  n = len(data["image_path"])
  for box, key in list(_per_sample(data, n)):
    v = box[key]
    if isinstance(v, list):
      box[key] = v[:pos] + [v[src]] + v[pos:]
    else:
      box[key] = np.insert(v, pos, v[src], axis=0)
  return data


def _save(tmp_path, name, data):
  path = tmp_path / f"{name}.npz"
  save_human_data(path, data)
  return path


def _source(path, split, policy="fail", root=None):
  return sources.NpzSource(
    "synthetic",
    str(path),
    str(root or path.parent),
    dataset_name="h36m" if split == "train" else "pw3d",
    test_mode=split == "test",
    bad_samples=policy,
  )


def _coco(n: int = 10) -> dict:
  """A COCO-layout file: keypoints2d with unlabelled joints at zero/conf 0,
  all-zero intrinsics and root (as the COCO samples of the mix have)."""
  rng = np.random.default_rng(0)
  mask = np.zeros(190, np.uint8)
  mask[:17] = 1
  kp = np.zeros((n, 190, 3))
  kp[:, :17, :2] = rng.uniform(50, 150, (n, 17, 2))
  kp[:, :17, 2] = 1
  kp[:, :5] = 0  # unlabelled face joints: zeros with confidence 0
  return {
    "image_path": [f"coco/{i:03d}.jpg" for i in range(n)],
    "image_height": [200] * n,
    "image_width": [200] * n,
    "bbox_xywh": np.tile([40.0, 30.0, 160.0, 170.0, 1.0], (n, 1)),
    "depth_factor": np.full(n, 2000.0),
    "keypoints2d": kp,
    "keypoints2d_mask": mask,
    "cam_param": {"intrinsic": np.zeros((n, 3, 3), np.float32)},
    "root_cam": np.zeros((n, 3), np.float32),
    "config": "coco",
  }


# ----------------------------------------------------------------------------
# Each kind of bad value, both policies.
# ----------------------------------------------------------------------------


def _nan_gt(d, i):
  d["keypoints3d17_relative"][i, np.flatnonzero(d["keypoints3d17_mask"])[3]] = (
    np.nan
  )


def _nan_box(d, i):
  d["bbox_xywh"][i, 1] = np.nan


def _zero_box(d, i):
  d["bbox_xywh"][i, 2:4] = d["bbox_xywh"][i, 0:2]


def test_one_zero_side_is_legal(tmp_path):
  """w = 0 < h: mmhuman3d widens the box to the input's aspect ratio."""
  data = _coco()
  data["bbox_xywh"][3, 2] = data["bbox_xywh"][3, 0]  # x2 == x1, y2 > y1
  path = _save(tmp_path, "thin", data)
  report = sample_checks.find_bad_samples(HybrIKAnnotations(path, "coco"))
  assert len(report.bad_indices) == 0


def _negative_box(d, i):
  d["bbox_xywh"][i, 2] = d["bbox_xywh"][i, 0] - 5.0


def _zero_depth(d, i):
  d["depth_factor"][i] = 0.0


def _nan_intrinsics(d, i):
  d["cam_param"]["intrinsic"][i, 0, 2] = np.nan


def _inf_theta(d, i):
  d["smpl"]["thetas"][i, 5, 1] = np.inf


def _nan_twist(d, i):
  d["phi"][i, 2, 0] = np.nan


def _nan_root(d, i):
  d["root_cam"][i, 2] = np.nan


def _nan_conf(d, i):
  d["keypoints3d"][i, np.flatnonzero(d["keypoints3d_mask"])[0], 3] = np.nan


BAD_KINDS = {
  # name: (split, break(data, i), key, reason)
  "nan_gt_keypoints": ("test", _nan_gt, "keypoints3d17_relative", "non-finite"),
  "nan_bbox": ("train", _nan_box, "bbox_xywh", "non-finite"),
  "zero_size_bbox": ("train", _zero_box, "bbox_xywh", "negative or zero size"),
  "negative_size_bbox": (
    "test",
    _negative_box,
    "bbox_xywh",
    "negative or zero size",
  ),
  "depth_factor_zero": ("test", _zero_depth, "depth_factor", "non-positive"),
  "nan_intrinsics": (
    "test",
    _nan_intrinsics,
    "cam_param.intrinsic",
    "non-finite",
  ),
  "inf_smpl_thetas": ("train", _inf_theta, "smpl.thetas", "non-finite"),
  "nan_phi": ("train", _nan_twist, "phi", "non-finite"),
  "nan_root_cam": ("train", _nan_root, "root_cam", "non-finite"),
  "nan_keypoint_confidence": ("train", _nan_conf, "keypoints3d", "non-finite"),
}


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_bad_sample_fails_naming_file_key_and_index(
  kind, synthetic_dir, tmp_path
):
  split, breaks, key, reason = BAD_KINDS[kind]
  data = _full(synthetic_dir / f"synthetic_{split}.npz")
  bad = 1
  breaks(data, bad)
  path = _save(tmp_path, f"broken_{kind}", data)
  with pytest.raises(BadSamplesError) as e:
    len(_source(path, split, "fail", synthetic_dir))
  err = e.value
  assert isinstance(err, HumanDataError) and isinstance(err, ValueError)
  assert err.path == str(path) and err.field == key
  msg = str(err)
  assert "\n" not in msg
  assert msg == (
    f"{path}: 1 bad sample ({key}: {reason} at {bad}); fix the file or set "
    "--config.data.bad_samples=skip"
  )


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_bad_sample_is_skipped_and_reported(
  kind, synthetic_dir, tmp_path, caplog
):
  split, breaks, key, reason = BAD_KINDS[kind]
  data = _full(synthetic_dir / f"synthetic_{split}.npz")
  n = len(data["image_path"])
  bad = 1
  breaks(data, bad)
  path = _save(tmp_path, f"broken_{kind}", data)
  source = _source(path, split, "skip", synthetic_dir)
  with caplog.at_level(logging.WARNING, logger=sample_checks.__name__):
    assert len(source) == n - 1
  assert source.skipped == {bad: f"{key}: {reason}"}
  good = [i for i in range(n) if i != bad]
  np.testing.assert_array_equal(source.indices, good)
  assert [source.annotation(j)["sample_idx"] for j in range(n - 1)] == good
  # One line: file, count, field, reason, index.
  (record,) = [r for r in caplog.records if r.name == sample_checks.__name__]
  line = record.getMessage()
  assert "\n" not in line and str(path) in line
  assert f"skipping 1 bad sample of {n} ({key}: {reason} at {bad})" in line


def test_missing_ground_truth_key_in_test_mode_is_an_error(
  synthetic_dir, tmp_path
):
  data = _full(synthetic_dir / "synthetic_test.npz")
  del data["keypoints3d17_relative"], data["keypoints3d17_relative_mask"]
  path = _save(tmp_path, "no_gt", data)
  for policy in sample_checks.POLICIES:
    with pytest.raises(HumanDataError) as e:
      len(_source(path, "test", policy, synthetic_dir))
    assert e.value.field == "keypoints3d17_relative"
    assert str(path) in str(e.value)
    assert "'keypoints3d17_relative'" in str(e.value)
    assert "'pw3d' evaluation protocol" in str(e.value)
  # Training reads it like mmhuman3d's try-block: no SMPL, no error.
  train = sources.NpzSource("x", str(path), str(synthetic_dir))
  assert len(train) == 2 and train.annotation(0)["has_smpl"] == 0
  # 3DHP's protocol scores keypoints3d_cam: still no error in test mode.
  ann = HybrIKAnnotations(path, "mpi_inf_3dhp", test_mode=True)
  np.testing.assert_array_equal(
    ann[0]["joint_relative_17"],
    data["keypoints3d_cam"][0, :, :3].astype(np.float32),
  )


def test_missing_smpl_in_test_mode_names_every_missing_key(
  synthetic_dir, tmp_path
):
  data = _full(synthetic_dir / "synthetic_test.npz")
  del data["smpl"], data["keypoints3d17"]
  path = _save(tmp_path, "no_smpl", data)
  with pytest.raises(HumanDataError) as e:
    HybrIKAnnotations(path, "h36m", test_mode=True)
  assert e.value.field == "smpl.thetas"
  assert "also missing: smpl.betas, keypoints3d17" in str(e.value)


# ----------------------------------------------------------------------------
# Legal zeros, several problems, valid files.
# ----------------------------------------------------------------------------


def test_coco_zeros_and_zero_confidence_joints_are_not_flagged(tmp_path):
  path = _save(tmp_path, "coco", _coco())
  ann = HybrIKAnnotations(path, "coco")
  assert sample_checks.find_bad_samples(ann).problems == ()
  source = sources.NpzSource("coco", str(path), str(tmp_path), "coco")
  assert len(source) == 10 and source.skipped == {}
  # Zero intrinsics / root / missing joints in an SMPL file are legal too.
  data = _coco()
  data["keypoints2d"][3, 5:8] = 0.0
  data["root_cam"][4] = 0.0
  assert (
    sample_checks.find_bad_samples(
      HybrIKAnnotations(_save(tmp_path, "coco2", data), "coco")
    ).problems
    == ()
  )


def test_message_lists_the_first_indices_of_each_field(tmp_path):
  data = _coco()
  data["bbox_xywh"][[4, 7], 2] = 10.0  # x2 < x1
  data["keypoints2d"][:, 9, 0] = np.nan
  data["keypoints2d"][[0, 1], 9, 0] = 5.0
  path = _save(tmp_path, "coco", data)
  report = sample_checks.find_bad_samples(HybrIKAnnotations(path, "coco"))
  np.testing.assert_array_equal(report.bad_indices, range(2, 10))
  assert str(report.error()) == (
    f"{path}: 8 bad samples (bbox_xywh: negative or zero size at 4, 7; "
    "keypoints2d: non-finite at 2, 3, 4, 5, 6 and 3 more); fix the file or "
    "set --config.data.bad_samples=skip"
  )
  assert report.reasons()[4] == (
    "bbox_xywh: negative or zero size; keypoints2d: non-finite"
  )
  # 'skip' with nothing left is an error too.
  data["keypoints2d"][:, 9, 0] = np.inf
  path = _save(tmp_path, "all_bad", data)
  with pytest.raises(BadSamplesError, match="10 bad samples.*nothing is left"):
    len(sources.NpzSource("c", str(path), str(tmp_path), "coco", False, "skip"))


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("policy", sample_checks.POLICIES)
def test_valid_files_give_the_same_samples_as_before(
  split, policy, synthetic_dir
):
  path = synthetic_dir / f"synthetic_{split}.npz"
  source = _source(path, split, policy)
  ann = HybrIKAnnotations(
    path, "h36m" if split == "train" else "pw3d", test_mode=split == "test"
  )
  assert len(source) == len(ann) and source.skipped == {}
  np.testing.assert_array_equal(source.indices, np.arange(len(ann)))
  for j in range(len(ann)):
    _assert_same_annotation(source.annotation(j), ann[j])


def _assert_same_annotation(a: dict, b: dict, skip=()):
  assert a.keys() == b.keys()
  for k in a:
    if k in skip:
      continue
    if isinstance(a[k], np.ndarray):
      assert a[k].dtype == b[k].dtype, k
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    else:
      assert a[k] == b[k], k


def test_unknown_policy_lists_the_choices(synthetic_dir):
  with pytest.raises(ValueError, match="'fail'.*'skip'"):
    _source(synthetic_dir / "synthetic_train.npz", "train", "ignore")
  spec = pipeline.DatasetSpec("s", "x.npz", ".", bad_samples="drop")
  with pytest.raises(ValueError, match="bad_samples='drop'"):
    spec.make_source()


def test_config_policy_reaches_the_source(synthetic_dir):
  from helpers import eval_config

  from hybrik_jax import builders

  config = eval_config(synthetic_dir)
  assert config.data.bad_samples == "fail"
  spec = builders.dataset_spec(config, config.data.test, "test")
  assert spec.bad_samples == "fail"
  config.data.bad_samples = "skip"
  spec = builders.dataset_spec(config, config.data.test, "test")
  assert spec.make_source(test_mode=True).bad_samples == "skip"
  config.data.bad_samples = "warn"
  with pytest.raises(ValueError, match="choose from 'fail', 'skip'"):
    builders.dataset_spec(config, config.data.test, "test")


# ----------------------------------------------------------------------------
# 'skip' changes nothing for the good samples.
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_and_without_bad(synthetic_dir, module_tmp):
  """(clean test file, the same with a NaN-GT copy of sample 0 at 1)."""
  tmp = module_tmp.mktemp("bad_inserted")
  clean = _full(synthetic_dir / "synthetic_test.npz")
  broken = _insert(clean, 1, 0)
  _nan_gt(broken, 1)
  return _save(tmp, "clean", clean), _save(tmp, "broken", broken)


def test_skip_keeps_annotations_and_inputs_bit_identical(
  with_and_without_bad, synthetic_dir
):
  from hybrik_jax.data import transforms

  clean_path, broken_path = with_and_without_bad
  clean = _source(clean_path, "test", "fail", synthetic_dir)
  skip = _source(broken_path, "test", "skip", synthetic_dir)
  assert len(clean) == len(skip) == 2
  assert skip.skipped == {1: "keypoints3d17_relative: non-finite"}
  np.testing.assert_array_equal(skip.indices, [0, 2])
  # Worker processes get the outcome with the pickle: no second check.
  skip = pickle.loads(pickle.dumps(skip))
  assert skip._annotations is None and len(skip) == 2
  for j in range(2):
    (a, img_a), (b, img_b) = clean[j], skip[j]
    assert b["sample_idx"] == skip.indices[j]
    _assert_same_annotation(a, b, skip=("sample_idx",))
    np.testing.assert_array_equal(img_a, img_b)
    out_a, out_b = (
      transforms.test_sample(a, img_a),
      transforms.test_sample(b, img_b),
    )
    _assert_same_annotation(out_a, out_b, skip=("sample_idx",))
  # The training stream only ever draws good samples.
  loader, _ = pipeline.make_train_loader(
    [(skip, 1.0)],
    seed=0,
    global_batch=8,
    process_index=0,
    process_count=1,
    num_epochs=1,
    sample_fn=lambda rng, ann, img: {"idx": np.int64(ann["sample_idx"])},
  )
  drawn = np.concatenate([b["idx"] for b in loader])
  assert set(drawn.tolist()) <= {0, 2}


def test_skip_keeps_predictions_and_metrics_bit_identical(
  with_and_without_bad, synthetic_dir
):
  from helpers import eval_config, load_synthetic_body, random_variables

  from hybrik_jax import builders
  from hybrik_jax.eval import protocol

  clean_path, broken_path = with_and_without_bad
  variables = random_variables(load_synthetic_body())
  config = eval_config(synthetic_dir)
  config.data.eval_batch_size = 2
  results = {}
  for name, path, policy in (
    ("clean", clean_path, "fail"),
    ("broken", broken_path, "skip"),
  ):
    config.data.bad_samples = policy
    ds = config.data.test.copy_and_resolve_references()
    ds.ann_file = str(path)
    ds.image_root = str(synthetic_dir)
    results[name] = protocol.evaluate_dataset(
      variables,
      builders.make_eval_data(config, ds),
      model=builders.build_model(config),
      progress=False,
    )
  clean, broken = results["clean"], results["broken"]
  assert clean["skipped_samples"] == []
  assert broken["skipped_samples"] == [
    (1, "keypoints3d17_relative: non-finite")
  ]
  assert clean["num_samples"] == broken["num_samples"] == 2
  assert np.isfinite(list(broken["metrics"].values())).all()
  assert broken["metrics"] == clean["metrics"]
  np.testing.assert_array_equal(broken["per_sample"]["sample_idx"], [0, 2])
  for k in ("mpjpe", "pa_mpjpe"):
    np.testing.assert_array_equal(
      broken["per_sample"][k], clean["per_sample"][k]
    )
  for k, v in clean["predictions"].items():
    np.testing.assert_array_equal(broken["predictions"][k], v, err_msg=k)
  # With 'fail' the broken file stops the evaluation.
  config.data.bad_samples = "fail"
  ds.ann_file = str(broken_path)
  with pytest.raises(BadSamplesError, match="keypoints3d17_relative"):
    builders.make_eval_data(config, ds)
