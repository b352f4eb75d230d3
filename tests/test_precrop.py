"""Pre-cropped records give the same training samples as full frames."""

import dataclasses

import cv2
import numpy as np
import pytest

from hybrik_jax.data import annotations as annotations_lib
from hybrik_jax.data import images, precrop, records, tfds_builder, transforms


def _embed(annotation, image, canvas_hw, offset, rng):
  """Places a sample's frame at `offset` in a larger noise canvas.

  Shifts every image-space annotation (bbox, center, visible 2D keypoints)
  and the frame size, giving a small person in a big frame.
  """
  ox, oy = offset
  h, w = image.shape[:2]
  canvas = rng.integers(0, 256, canvas_hw + (3,), dtype=np.uint8)
  canvas[oy : oy + h, ox : ox + w] = image
  ann = dict(annotation)
  shift = np.array([ox, oy, ox, oy], np.float64)
  ann["bbox"] = annotation["bbox"] + shift
  ann["center"] = annotation["center"] + shift[:2]
  ann["ann_info"] = dict(
    annotation["ann_info"], height=canvas_hw[0], width=canvas_hw[1]
  )
  for key in ("keypoints3d", "keypoints3d17"):
    if key in annotation:
      kp = annotation[key].copy()
      vis = annotation[key + "_vis"][:, 0] > 0
      kp[vis, :2] += np.array([ox, oy], np.float32)
      ann[key] = kp
  return ann, canvas


def _samples_equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_crop_box_contains_box_and_fits_frame():
  rng = np.random.default_rng(0)
  for _ in range(200):
    hw = (int(rng.integers(50, 2000)), int(rng.integers(50, 2000)))
    x1, x2 = np.sort(rng.uniform(0, hw[1] - 1, 2))
    y1, y2 = np.sort(rng.uniform(0, hw[0] - 1, 2))
    for augment in (True, False):
      cfg = precrop.PrecropConfig(augment=augment)
      x0, y0, xe, ye = precrop.crop_box([x1, y1, x2, y2], hw, cfg)
      assert 0 <= x0 < xe <= hw[1] and 0 <= y0 < ye <= hw[0]
      assert x0 <= max(np.floor(x1) - 2, 0) and xe >= min(
        np.ceil(x2) + 2, hw[1]
      )
      assert y0 <= max(np.floor(y1) - 2, 0) and ye >= min(
        np.ceil(y2) + 2, hw[0]
      )


def test_crop_margin_for_a_square_box_in_a_huge_frame():
  # w = h = 100 far from the borders; kappa = 1.25 / sqrt(2) (scale 1.25,
  # 45-degree rotation). No DPG: kappa * (125 + 1) = 111.4 px. Jitter, worst
  # left vertex: X1 = x1 - 47.74, X2 = x2 - 51.94 (narrow, shifted left), side
  # = height 155.08 (Y1 = y1 - 26.77, Y2 = y2 + 28.31): centre x - kappa * side
  # = x1 - 136.9; worst right: X1 = x1 + 44.90, X2 = x2 + 55.02 -> x2 + 137.0.
  # Then pad 2 (and +1 for the exclusive end).
  box = precrop.crop_box([5000, 5000, 5100, 5100], (10000, 10000))
  x0, y0, xe, ye = box
  assert 5000 - x0 == pytest.approx(136.9 + 2, abs=1.0)
  assert xe - 5100 == pytest.approx(137.0 + 3, abs=1.0)
  assert (xe - x0) * (ye - y0) < 400 * 400


def test_footprint_violations_are_rare():
  """Fraction of real draws whose warp needs pixels outside the crop."""
  rng = np.random.default_rng(1)
  cfg = transforms.DEFAULT_CONFIG
  n, bad, bad_small = 5000, 0, 0
  # A crop sized for no augmentation at all (test-time crop + rotation 0).
  loose = precrop.PrecropConfig(
    jitter_sigmas=0.0, scale_factor=0.0, max_rotation_deg=0.0
  )
  for _ in range(n):
    w, h = rng.uniform(20, 300, 2)
    x1, y1 = rng.uniform(0, 1500, 2)
    ann = {
      "bbox": np.array([x1, y1, x1 + w, y1 + h]),
      "ann_info": {"width": 2000, "height": 2000},
    }
    d = transforms.sample_draws(rng, ann, (2000, 2000, 3), cfg)
    bbox = ann["bbox"]
    center, scale = transforms.xyxy_to_center_scale(bbox, 1.25)
    if d.dpg_u <= cfg.dpg_prob:
      bbox, center, scale = transforms.dpg_bbox(bbox, 2000, 2000, d)
    scale, rot = transforms.random_scale_rotation(scale, d, cfg)
    trans_inv = transforms.get_affine_transform(
      center, scale, rot, (256, 256), inv=True
    )
    box = precrop.crop_box(ann["bbox"], (2000, 2000))
    bad += not precrop.footprint_inside(trans_inv, box, (2000, 2000))
    box = precrop.crop_box(ann["bbox"], (2000, 2000), loose)
    bad_small += not precrop.footprint_inside(trans_inv, box, (2000, 2000))
  # 4 sigma: expected ~1e-4 (needs an edge beyond 4 sigma); the small crop:
  # check does catch crops that are too small.
  print(f"violations: {bad}/{n} (4 sigma), {bad_small}/{n} (small crop)")
  assert bad <= 2, bad
  assert bad_small > 50, bad_small


@pytest.mark.parametrize("placement", ["interior", "corner"])
def test_precropped_sample_equals_full_frame_sample(synthetic_dir, placement):
  anns = annotations_lib.HybrIKAnnotations(
    str(synthetic_dir / "synthetic_train.npz"), "h36m"
  )
  rng = np.random.default_rng(7)
  cfg = transforms.DEFAULT_CONFIG
  n_flip_occ = n_dpg_rot = n_cropped = 0
  for trial in range(12):
    j = trial % len(anns)
    ann0 = anns[j]
    image0 = cv2.imread(str(synthetic_dir / anns.image_path[j]))
    # Shrink the person so the crop is a small part of a big frame.
    small = cv2.resize(image0, (90, 120), interpolation=cv2.INTER_AREA)
    ann0 = dict(ann0)
    sx, sy = 90 / image0.shape[1], 120 / image0.shape[0]
    ann0["bbox"] = ann0["bbox"] * [sx, sy, sx, sy]
    ann0["center"], ann0["scale"] = transforms.xyxy_to_center_scale(
      ann0["bbox"], 1.25
    )
    for key in ("keypoints3d", "keypoints3d17"):
      kp = ann0[key].copy()
      kp[:, :2] *= [sx, sy]
      ann0[key] = kp
    offset = (450, 350) if placement == "interior" else (3, 2)
    ann, frame = _embed(ann0, small, (900, 1000), offset, rng)
    # Store like the builder does (PNG: lossless), read like TfdsSource does.
    _, png = cv2.imencode(".png", frame)
    rec = tfds_builder.make_record(
      ann, png.tobytes(), "test frame", precrop.PrecropConfig(), "png"
    )
    crop = images.decode_image(rec["image"].tobytes(), "crop")
    assert crop.size < frame.size / 4
    n_cropped += 1
    ann_rec = records.decode(rec["annotation"].tobytes())
    virtual = precrop.virtual_frame(crop, rec["crop_offset"], rec["frame_hw"])
    draws = transforms.sample_draws(
      np.random.default_rng([3, trial]), ann, frame.shape, cfg
    )
    if trial % 2 == 0:  # force flip + occlusion on half of the trials
      draws = dataclasses.replace(draws, flip_u=0.0, occ_u=0.0)
      draws = dataclasses.replace(draws, occ_noise=None)
      rect = transforms.occlusion_rect(
        (
          transforms.dpg_bbox(ann["bbox"], 1000, 900, draws)[0]
          if draws.dpg_u <= cfg.dpg_prob
          else ann["bbox"]
        ),
        1000,
        900,
        draws,
        cfg,
      )
      if rect is not None:
        draws.occ_noise = np.random.default_rng(trial).random(
          (rect[3], rect[2], 3)
        )
        n_flip_occ += 1
    n_dpg_rot += draws.dpg_u <= cfg.dpg_prob and draws.rot_u <= cfg.rot_prob
    full = transforms.train_sample(ann, frame, draws, cfg)
    pre = transforms.train_sample(ann_rec, virtual, draws, cfg)
    _samples_equal(full, pre)
    box = (
      *rec["crop_offset"],
      rec["crop_offset"][0] + crop.shape[1],
      rec["crop_offset"][1] + crop.shape[0],
    )
    assert precrop.footprint_inside(
      np.asarray(full["trans_inv"], np.float64),
      box,
      (900, 1000),
      flipped=draws.flip_u <= cfg.flip_prob,
    )
  assert n_flip_occ >= 4 and n_dpg_rot >= 2 and n_cropped == 12


def test_test_split_crop_matches_full_frame(synthetic_dir):
  anns = annotations_lib.HybrIKAnnotations(
    str(synthetic_dir / "synthetic_test.npz"), "pw3d", test_mode=True
  )
  rng = np.random.default_rng(2)
  for j in range(len(anns)):
    image0 = cv2.imread(str(synthetic_dir / anns.image_path[j]))
    ann, frame = _embed(anns[j], image0, (900, 1000), (400, 300), rng)
    _, png = cv2.imencode(".png", frame)
    rec = tfds_builder.make_record(
      ann,
      png.tobytes(),
      "test frame",
      precrop.PrecropConfig(augment=False),
      "png",
    )
    crop = images.decode_image(rec["image"].tobytes(), "crop")
    virtual = precrop.virtual_frame(crop, rec["crop_offset"], rec["frame_hw"])
    _samples_equal(
      transforms.test_sample(ann, frame),
      transforms.test_sample(
        records.decode(rec["annotation"].tobytes()), virtual
      ),
    )


def test_whole_frame_crop_keeps_the_original_bytes(synthetic_dir):
  anns = annotations_lib.HybrIKAnnotations(
    str(synthetic_dir / "synthetic_train.npz"), "h36m"
  )
  data = (synthetic_dir / anns.image_path[0]).read_bytes()
  rec = tfds_builder.make_record(anns[0], data, "x", precrop.PrecropConfig())
  # The synthetic person fills its 240x320 frame: the crop is the frame.
  np.testing.assert_array_equal(rec["crop_offset"], [0, 0])
  np.testing.assert_array_equal(rec["frame_hw"], [320, 240])
  assert rec["image"].tobytes() == data


def test_annotation_record_round_trip_keeps_types():
  ann = {
    "a": np.arange(6, dtype=np.float32).reshape(2, 3),
    "b": 2.5,
    "c": 3,
    "d": "x/y.jpg",
    "e": np.float64(1.5),
    "f": {"g": np.int32(4)},
    "h": True,
  }
  out = records.decode(records.encode(ann))
  assert out.keys() == ann.keys()
  assert out["a"].dtype == np.float32 and out["a"].shape == (2, 3)
  np.testing.assert_array_equal(out["a"], ann["a"])
  assert type(out["b"]) is float and type(out["c"]) is int
  assert type(out["d"]) is str and out["d"] == "x/y.jpg"
  assert type(out["e"]) is np.float64 and out["f"]["g"].dtype == np.int32
  assert out["h"] is True
  with pytest.raises(TypeError, match="object"):
    records.encode({"bad": np.array([None])})


def test_virtual_frame_rejects_a_crop_outside_the_frame():
  with pytest.raises(ValueError, match="does not fit"):
    precrop.virtual_frame(np.zeros((10, 10, 3), np.uint8), (95, 0), (50, 100))
