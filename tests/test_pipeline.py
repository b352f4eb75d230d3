"""Tests of the grain input pipeline (mixing, sharding, determinism, resume)."""

import json
import math

import numpy as np
import pytest

from hybrik_jax.data import pipeline


class _FakeSource:
  """Tiny in-memory source: sample j of dataset k is a 4x4 frame of value j."""

  def __init__(self, name, k, n):
    self.name, self.k, self.n = name, k, n

  def __len__(self):
    return self.n

  def __getitem__(self, j):
    if not 0 <= j < self.n:
      raise IndexError(j)
    image = np.full((4, 4, 3), j % 256, np.uint8)
    return {"dataset": self.k, "sample_idx": j}, image


def _train_fn(rng, annotation, image):
  # Stands in for sample_draws + train_sample: uses the per-sample generator.
  return {
    "dataset": np.int32(annotation["dataset"]),
    "index": np.int64(annotation["sample_idx"]),
    "pixel": np.float32(image[0, 0, 0]),
    "draw": np.float64(rng.uniform()),
  }


def _test_fn(annotation, image):
  return {
    "index": np.int64(annotation["sample_idx"]),
    "pixel": np.float32(image[0, 0, 0]),
  }


_MIX = (
  (_FakeSource("h36m", 0, 120), 0.4),
  (_FakeSource("mpi", 1, 30), 0.1),
  (_FakeSource("coco", 2, 200), 0.5),
)


def _train(
  global_batch=8, worker_count=0, process_index=0, process_count=1, seed=3, **kw
):
  return pipeline.make_train_loader(
    _MIX,
    seed=seed,
    global_batch=global_batch,
    worker_count=worker_count,
    process_index=process_index,
    process_count=process_count,
    sample_fn=_train_fn,
    **kw,
  )


def _take(loader, n):
  return [next(loader) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_steps_per_epoch_is_ceil_of_largest_over_global_batch():
  loader, steps = _train(global_batch=64, num_epochs=2)
  assert steps == math.ceil(200 / 64) == 4
  batches = list(loader)
  assert len(batches) == 8
  assert batches[0]["index"].shape == (64,)


def test_mixing_proportions_and_uniform_within_dataset():
  loader, _ = _train(global_batch=500)
  batches = _take(loader, 8)  # 4000 draws
  k = np.concatenate([b["dataset"] for b in batches])
  idx = np.concatenate([b["index"] for b in batches])
  freq = np.bincount(k, minlength=3) / k.size
  # 4000 draws: std of a frequency <= 0.008; 4 sigma bound.
  np.testing.assert_allclose(freq, [0.4, 0.1, 0.5], atol=0.032)
  # Within h36m (120 samples, ~1600 draws) the index is uniform: every index
  # is hit and the mean is ~59.5 (std of the mean ~0.9).
  h36m = idx[k == 0]
  assert h36m.max() < 120 and len(np.unique(h36m)) == 120
  assert abs(h36m.mean() - 59.5) < 4.0
  assert idx[k == 1].max() < 30
  # Pixels come from the right sample.
  np.testing.assert_array_equal(
    np.concatenate([b["pixel"] for b in batches]), idx % 256
  )


def test_two_hosts_see_disjoint_halves_of_the_global_batch():
  full, _ = _train(global_batch=8)
  host0, _ = _train(global_batch=8, process_index=0, process_count=2)
  host1, _ = _train(global_batch=8, process_index=1, process_count=2)
  for _ in range(3):
    g, a, b = next(full), next(host0), next(host1)
    assert a["draw"].shape == (4,)
    for k in g:
      np.testing.assert_array_equal(np.concatenate([a[k], b[k]]), g[k])
    # Disjoint: the per-sample generators differ, so do the draws.
    assert not set(a["draw"].tolist()) & set(b["draw"].tolist())


@pytest.mark.parametrize("hosts", [1, 2, 4])
def test_each_sample_of_an_epoch_goes_to_exactly_one_host(hosts):
  full, steps = _train(global_batch=8, num_epochs=1)
  epoch = list(full)
  per_host = [
    list(
      _train(
        global_batch=8, num_epochs=1, process_index=h, process_count=hosts
      )[0]
    )
    for h in range(hosts)
  ]
  assert all(len(b) == steps for b in per_host)
  seen = []
  for s in range(steps):
    for k in epoch[s]:
      # The hosts' slices, in process order, are the global batch.
      joined = np.concatenate([per_host[h][s][k] for h in range(hosts)])
      np.testing.assert_array_equal(joined, epoch[s][k], err_msg=k)
    seen += [
      (h, s, tuple(row))
      for h in range(hosts)
      for row in zip(per_host[h][s]["dataset"], per_host[h][s]["draw"])
    ]
  # Every (sample, draw) of the epoch is on exactly one host.
  draws = [d for _, _, d in seen]
  assert len(draws) == len(set(draws)) == steps * 8


def test_epochs_differ_and_seed_matters():
  loader, steps = _train(global_batch=50)
  batches = _take(loader, 2 * steps)
  e0 = np.concatenate([b["draw"] for b in batches[:steps]])
  e1 = np.concatenate([b["draw"] for b in batches[steps:]])
  assert not np.array_equal(e0, e1)
  other, _ = _train(global_batch=50, seed=4)
  assert not np.array_equal(next(other)["draw"], batches[0]["draw"])


@pytest.mark.slow  # starts worker processes (~5 s)
def test_same_stream_for_worker_count_0_and_2():
  ref, _ = _train(worker_count=0)
  par, _ = _train(worker_count=2)
  try:
    _assert_batches_equal(_take(ref, 7), _take(par, 7))
  finally:
    par.close()


@pytest.mark.parametrize(
  "worker_count", [0, pytest.param(2, marks=pytest.mark.slow)]
)
def test_resume_mid_epoch_gives_the_uninterrupted_stream(worker_count):
  loader, steps = _train(global_batch=16, worker_count=worker_count)
  assert steps == 13
  uninterrupted, _ = _train(global_batch=16)
  expected = _take(uninterrupted, 20)
  try:
    got = _take(loader, 15)  # into the second epoch
    state = json.loads(json.dumps(loader.get_state()))
  finally:
    loader.close()
  assert state["step"] == 15
  resumed, _ = _train(global_batch=16, worker_count=worker_count)
  try:
    resumed.set_state(state)
    got += _take(resumed, 5)
  finally:
    resumed.close()
  _assert_batches_equal(got, expected)


def test_set_state_refuses_another_stream():
  loader, _ = _train(global_batch=16)
  state = loader.get_state()
  other, _ = _train(global_batch=16, seed=9)
  with pytest.raises(ValueError, match="seed"):
    other.set_state(state)


def test_bad_host_split_is_reported():
  with pytest.raises(ValueError, match="not divisible"):
    _train(global_batch=10, process_count=3)


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_eval_loader_covers_every_sample_once(process_count):
  source = _FakeSource("pw3d", 0, 37)
  seen, n_valid = [], 0
  for h in range(process_count):
    loader, steps = pipeline.make_eval_loader(
      source,
      global_batch=8,
      process_index=h,
      process_count=process_count,
      sample_fn=_test_fn,
    )
    assert loader.num_steps == steps
    assert steps == 5
    batches = list(loader)
    assert len(batches) == 5
    for b in batches:
      assert b["valid"].dtype == bool and b["valid"].shape == (
        8 // process_count,
      )
      seen.extend(b["sample_idx"][b["valid"]].tolist())
      n_valid += int(b["valid"].sum())
      np.testing.assert_array_equal(b["index"], b["sample_idx"])
  assert n_valid == 37
  assert sorted(seen) == list(range(37))


# ---------------------------------------------------------------------------
# End to end on the synthetic dataset: real transforms, npz and tfds sources.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfds_dir(synthetic_dir, module_tmp):
  from hybrik_jax.data import tfds_builder

  data_dir = module_tmp.mktemp("tfds")
  tfds_builder.build(
    "synthetic", str(synthetic_dir), str(data_dir), num_threads=2
  )
  return data_dir


def _npz_spec(d, split="train", weight=1.0):
  return pipeline.DatasetSpec(
    "synthetic",
    str(d / f"synthetic_{split}.npz"),
    str(d),
    weight=weight,
    dataset_name="h36m" if split == "train" else "pw3d",
  )


def _tfds_spec(data_dir, split="train", weight=1.0):
  return pipeline.DatasetSpec(
    "synthetic",
    "hybrik_data/synthetic",
    str(data_dir),
    weight=weight,
    source="tfds",
    split=split,
  )


def test_tfds_build_and_read_back_without_tensorflow(synthetic_dir, tfds_dir):
  import sys

  import tensorflow_datasets as tfds

  assert "tensorflow" not in sys.modules
  ds = tfds.data_source("hybrik_data/synthetic", data_dir=str(tfds_dir))
  assert len(ds["train"]) == 4 and len(ds["test"]) == 2
  npz = _npz_spec(synthetic_dir).make_source()
  tf_src = _tfds_spec(tfds_dir).make_source()
  for j in range(4):
    rec = ds["train"][j]
    assert rec["sample_idx"] == j
    np.testing.assert_array_equal(rec["frame_hw"], [320, 240])
    ann_a, img_a = npz[j]
    ann_b, img_b = tf_src[j]
    assert tf_src.annotation(j).keys() == ann_b.keys()
    np.testing.assert_array_equal(img_a, img_b)
    assert ann_a.keys() == ann_b.keys()
    for k in ann_a:
      if isinstance(ann_a[k], np.ndarray):
        np.testing.assert_array_equal(ann_a[k], ann_b[k], err_msg=k)
      else:
        assert ann_a[k] == ann_b[k], k
  assert "tensorflow" not in sys.modules


def test_train_batches_from_npz_and_tfds_are_identical(synthetic_dir, tfds_dir):
  a, steps = pipeline.make_train_loader(
    [_npz_spec(synthetic_dir)],
    seed=0,
    global_batch=4,
    process_index=0,
    process_count=1,
  )
  b, _ = pipeline.make_train_loader(
    [_tfds_spec(tfds_dir)],
    seed=0,
    global_batch=4,
    process_index=0,
    process_count=1,
  )
  assert steps == 1
  batches_a, batches_b = _take(a, 2), _take(b, 2)
  _assert_batches_equal(batches_a, batches_b)
  batch = batches_a[0]
  assert batch["img"].shape == (4, 256, 256, 3)
  assert batch["img"].dtype == np.float32
  assert batch["target_uvd_29"].shape == (4, 87)
  assert batch["trans_inv"].shape == (4, 2, 3)
  # Augmented: the two epochs differ, and differ from the test crop.
  assert not np.array_equal(batches_a[0]["img"], batches_a[1]["img"])


def test_train_batch_matches_direct_transform(synthetic_dir):
  from hybrik_jax.data import transforms

  loader, _ = pipeline.make_train_loader(
    [_npz_spec(synthetic_dir)],
    seed=5,
    global_batch=2,
    process_index=0,
    process_count=1,
  )
  batch = next(loader)
  source = _npz_spec(synthetic_dir).make_source()
  for position in range(2):
    rng = np.random.default_rng([5, 0, position])
    k = int(rng.choice(1, p=[1.0]))
    j = int(rng.integers(len(source)))
    assert k == 0
    ann, img = source[j]
    draws = transforms.sample_draws(rng, ann, img.shape)
    expected = transforms.train_sample(ann, img, draws)
    for key, value in expected.items():
      np.testing.assert_array_equal(batch[key][position], value, err_msg=key)


def test_eval_loader_on_synthetic_test_split(synthetic_dir, tfds_dir):
  from hybrik_jax.data import transforms

  for spec in (_npz_spec(synthetic_dir, "test"), _tfds_spec(tfds_dir, "test")):
    loader, steps = pipeline.make_eval_loader(
      spec, global_batch=4, process_index=0, process_count=1
    )
    batches = list(loader)
    assert steps == 1 and len(batches) == 1
    batch = batches[0]
    np.testing.assert_array_equal(batch["valid"], [True, True, False, False])
    np.testing.assert_array_equal(batch["sample_idx"], [0, 1, 0, 0])
    source = spec.make_source(test_mode=True)
    ann, img = source[1]
    expected = transforms.test_sample(ann, img)
    for key, value in expected.items():
      np.testing.assert_array_equal(batch[key][1], value, err_msg=key)


def test_tfds_source_refuses_augmentation_beyond_the_crop(tfds_dir):
  from hybrik_jax.data import transforms

  with pytest.raises(ValueError, match="pre-cropped"):
    pipeline.make_train_loader(
      [_tfds_spec(tfds_dir)],
      seed=0,
      global_batch=2,
      process_index=0,
      process_count=1,
      transform_config=transforms.TransformConfig(scale_factor=0.5),
    )
