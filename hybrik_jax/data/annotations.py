"""Per-sample annotations as mmhuman3d's HybrIK dataset builds them.

:class:`HybrIKAnnotations` reproduces
``HybrIKHumanImageDataset.load_annotations``
(``mmhuman3d/data/datasets/human_hybrik_dataset.py``) plus ``prepare_data``
(``dataset_name`` and ``sample_idx`` added), but builds each sample's dict on
demand from the (still mask-compressed) HumanData arrays instead of holding
hundreds of thousands of dicts with 190-joint arrays in memory.

Per-sample dict (the ``results`` the transform pipeline starts from):
  image_path: ``<data_prefix>/datasets/<dataset_name>/<image_path>``.
  bbox: [4] float64, the stored ``bbox_xywh[:4]`` (really x1, y1, x2, y2 px).
  center, scale: [2] float64 from :func:`box2cs` (square, x1.25 margin).
  rotation: 0 (degrees).
  ann_info: {'height', 'width', 'dataset_name'}; image size from the file.
  dataset_name, sample_idx.
  depth_factor: Python float (2000.0 mm; 2.0 m for 3DPW).
  has_smpl: int 0/1.
  joint_root: [3] float32 ``root_cam`` (mm; m for 3DPW; zeros if absent).
  intrinsic_param: [3,3] float32 inverse camera matrix (zeros if absent: COCO).
  target_twist, target_twist_weight: [23,2] float32 (cos, sin) / weights
    (zeros if absent).
  keypoints3d, keypoints3d_vis: [190,3] float32. From ``keypoints2d`` when
    present (COCO: x, y, z=0; visibility on x and y only), else from
    ``keypoints3d`` ([u px, v px, z - z_root] with visibility on all three).
  If has_smpl: pose [24,3] float32 axis-angle, beta [10] float32,
    keypoints3d_relative [190,3], keypoints3d17 [190,3], keypoints3d17_vis
    [190,3], keypoints3d17_relative [190,3] (float32).
  In test mode: joint_relative_17 [190,3] float32 (keypoints3d17_relative for
    SMPL data, keypoints3d_cam otherwise). Unlike mmhuman3d, a test file
    that lacks an SMPL-side key is an error unless the dataset is
    'mpi_inf_3dhp' (see ``HybrIKAnnotations``).

Which samples hold usable values is decided by ``sample_checks``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from hybrik_jax.data.human_data import (
  HumanData,
  HumanDataError,
  load_human_data,
)


def xyxy2xywh(bbox_xyxy: np.ndarray) -> np.ndarray:
  """(x1, y1, x2, y2[, score]) -> (x1, y1, w, h[, score]) with w = x2 - x1."""
  bbox = np.array(bbox_xyxy, copy=True)
  bbox[..., 2] = bbox[..., 2] - bbox[..., 0]
  bbox[..., 3] = bbox[..., 3] - bbox[..., 1]
  return bbox


def box2cs(
  bbox_xywh: np.ndarray,
  aspect_ratio: float = 1.0,
  bbox_scale_factor: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
  """Box -> (center [2], scale [2]) as ``mmhuman3d.utils.demo_utils.box2cs``.

  The centre is (x + w/2, y + h/2); the box is widened to ``aspect_ratio``
  (w/h) by growing the shorter side (``w > r*h`` grows h to w/r, otherwise w
  becomes h*r), then both sides are multiplied by ``bbox_scale_factor``.
  Pixel units (pixel_std = 1).
  """
  xywh = np.asarray(bbox_xywh)
  if xywh.dtype.kind != "f":
    xywh = xywh.astype(np.float64)
  center = np.stack(
    [xywh[..., 0] + xywh[..., 2] * 0.5, xywh[..., 1] + xywh[..., 3] * 0.5], -1
  )
  w = xywh[..., 2]
  h = xywh[..., 3]
  wider = w > aspect_ratio * h
  new_h = np.where(wider, w / aspect_ratio, h)
  new_w = np.where(wider, w, h * aspect_ratio)
  scale = np.stack([new_w * 1.0, new_h * 1.0], -1) * bbox_scale_factor
  return center, scale


def _keypoints_and_vis(kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``get_3d_keypoints_vis`` for one sample: [190, C] -> two [190, 3] float32.

  The last column is the visibility; the first C-1 columns are copied and the
  visibility is replicated over those C-1 dims (zeros elsewhere).
  """
  coords, vis = kp[:, :-1], kp[:, -1]
  dim = coords.shape[1]
  joint = np.zeros((kp.shape[0], 3), dtype=np.float32)
  joint_vis = np.zeros((kp.shape[0], 3), dtype=np.float32)
  joint[:, :dim] = coords
  joint_vis[:, :dim] = vis[:, None]
  return joint, joint_vis


class HybrIKAnnotations:
  """Lazily built per-sample annotations of one HybrIK HumanData file.

  Args:
    human_data: a :class:`HumanData` or the path of its ``.npz``.
    dataset_name: 'h36m', 'mpi_inf_3dhp', 'coco' or 'pw3d' (selects the
      target branch and the image folder).
    data_prefix: mmhuman3d's ``data_prefix`` ('data'): images are read from
      ``<data_prefix>/datasets/<dataset_name>/<image_path>``.
    test_mode: as the dataset's ``test_mode`` (adds ``joint_relative_17``).

  Attributes:
    human_data: the underlying :class:`HumanData`.
    image_path: list[str], the stored (relative) image paths.
    num_data: N.

    keypoint_keys: the keypoints arrays that ``__getitem__`` reads.

  Raises:
    HumanDataError: a field that ``load_annotations`` needs is missing,
      naming the file and the field; in test mode also a missing SMPL-side
      field (``keypoints3d17_relative``, ``smpl.thetas``, ...) for any
      protocol but 'mpi_inf_3dhp', where mmhuman3d would silently score
      ``keypoints3d_cam`` instead.
  """

  def __init__(
    self,
    human_data: HumanData | str | os.PathLike,
    dataset_name: str,
    data_prefix: str = "data",
    test_mode: bool = False,
  ):
    if not isinstance(human_data, HumanData):
      human_data = load_human_data(human_data)
    self.human_data = hd = human_data
    self.dataset_name = dataset_name
    self.data_prefix = data_prefix
    self.test_mode = bool(test_mode)
    path = hd.path or "<memory>"

    def need(key):
      if key not in hd:
        raise HumanDataError(
          path, key, "required by HybrIKHumanImageDataset but missing"
        )
      return dict.__getitem__(hd, key)

    self.image_path = list(need("image_path"))
    self.num_data = len(self.image_path)
    self.bbox_xyxy = np.asarray(need("bbox_xywh"))
    self.width = np.asarray(need("image_width"))
    self.height = np.asarray(need("image_height"))
    self.depth_factor = np.asarray(need("depth_factor"))
    if "keypoints2d" in hd:
      self._kp_key = "keypoints2d"
    else:
      need("keypoints3d")
      self._kp_key = "keypoints3d"

    # The try-block of load_annotations: any missing key -> no SMPL.
    smpl = hd.get("smpl")
    smpl_keys = [
      "keypoints3d_relative",
      "keypoints3d17",
      "keypoints3d17_relative",
    ]
    if self.test_mode:
      smpl_keys.append("keypoints3d_cam")
    self.smpl_present = (
      isinstance(smpl, dict)
      and "thetas" in smpl
      and "betas" in smpl
      and all(k in hd for k in smpl_keys)
    )
    if self.test_mode and dataset_name != "mpi_inf_3dhp":
      self._require_smpl_ground_truth(path, smpl, smpl_keys)
    if self.smpl_present:
      if "has_smpl" in hd:
        self.has_smpl = np.asarray(hd.get("has_smpl")).astype(np.float32)
      else:
        self.has_smpl = np.ones(self.num_data, dtype=np.float32)
      self.thetas = np.asarray(smpl["thetas"]).reshape(self.num_data, 24, 3)
      self.betas = np.asarray(smpl["betas"])
    else:
      self.has_smpl = np.zeros(self.num_data, dtype=np.float32)
      if self.test_mode:
        need("keypoints3d")
        need("keypoints3d_cam")
        self._kp_key = "keypoints3d"

    cam = hd.get("cam_param")
    self.intrinsic = (
      np.asarray(cam["intrinsic"])
      if isinstance(cam, dict) and "intrinsic" in cam
      else None
    )
    if "phi" in hd and "phi_weight" in hd:
      self.twist = np.asarray(hd.get("phi"))
      self.twist_weight = np.asarray(hd.get("phi_weight"))
    else:
      self.twist = self.twist_weight = None
    self.root_cam = np.asarray(hd.get("root_cam")) if "root_cam" in hd else None
    # The keypoints arrays __getitem__ reads (for the value checks).
    keys = [self._kp_key]
    if self.smpl_present:
      keys += [
        "keypoints3d_relative",
        "keypoints3d17",
        "keypoints3d17_relative",
      ]
    elif self.test_mode:
      keys.append("keypoints3d_cam")
    self.keypoint_keys = tuple(keys)

  def _require_smpl_ground_truth(self, path, smpl, smpl_keys) -> None:
    """Test mode, H36M-17 protocol: the SMPL-side keys must all be present.

    mmhuman3d's ``load_annotations`` catches the KeyError of any missing
    SMPL-side key and silently takes ``joint_relative_17`` from
    ``keypoints3d_cam`` instead of ``keypoints3d17_relative``: the protocol
    (``h36m_idxs``) then scores the wrong joints. Only MPI-INF-3DHP's
    protocol is meant for ``keypoints3d_cam``; for every other dataset a
    missing key is an error here.
    """
    if self.smpl_present:
      return
    smpl = smpl if isinstance(smpl, dict) else {}
    present = {k for k in smpl_keys if k in self.human_data}
    present |= {f"smpl.{k}" for k in ("thetas", "betas") if k in smpl}
    # The ground truth itself first, then the rest of the try-block's keys.
    order = ["keypoints3d17_relative", "smpl.thetas", "smpl.betas", *smpl_keys]
    missing = [k for k in dict.fromkeys(order) if k not in present]
    also = f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""
    raise HumanDataError(
      path,
      missing[0],
      f"needed in test mode by the '{self.dataset_name}' evaluation "
      f"protocol (ground truth joint_relative_17 = keypoints3d17_relative) "
      f"but missing{also}; only 'mpi_inf_3dhp' is scored from "
      f"keypoints3d_cam",
    )

  def __len__(self) -> int:
    return self.num_data

  def __getitem__(self, idx: int) -> dict[str, Any]:
    idx = int(idx)
    if not 0 <= idx < self.num_data:
      raise IndexError(f"sample {idx} out of range [0, {self.num_data})")
    hd = self.human_data
    info: dict[str, Any] = {"img_prefix": None}
    info["image_path"] = os.path.join(
      self.data_prefix, "datasets", self.dataset_name, self.image_path[idx]
    )
    bbox_xyxy = np.array(self.bbox_xyxy[idx], copy=True)
    info["bbox"] = bbox_xyxy[:4]
    center, scale = box2cs(
      xyxy2xywh(bbox_xyxy), aspect_ratio=1.0, bbox_scale_factor=1.25
    )
    info["center"] = center
    info["scale"] = scale
    info["rotation"] = 0
    info["ann_info"] = {
      "dataset_name": self.dataset_name,
      "height": self.height[idx].item(),
      "width": self.width[idx].item(),
    }
    info["depth_factor"] = float(self.depth_factor[idx])
    info["has_smpl"] = int(self.has_smpl[idx])
    info["joint_root"] = (
      np.zeros(3, np.float32)
      if self.root_cam is None
      else self.root_cam[idx].astype(np.float32)
    )
    info["intrinsic_param"] = (
      np.zeros((3, 3), np.float32)
      if self.intrinsic is None
      else self.intrinsic[idx].astype(np.float32)
    )
    if self.twist is None:
      info["target_twist"] = np.zeros((23, 2), np.float32)
      info["target_twist_weight"] = np.zeros((23, 2), np.float32)
    else:
      info["target_twist"] = self.twist[idx].astype(np.float32)
      info["target_twist_weight"] = self.twist_weight[idx].astype(np.float32)
    kp, kp_vis = _keypoints_and_vis(hd.keypoints(self._kp_key, idx))
    info["keypoints3d"] = kp
    info["keypoints3d_vis"] = kp_vis
    if info["has_smpl"]:
      info["pose"] = self.thetas[idx].astype(np.float32)
      info["beta"] = self.betas[idx].astype(np.float32)
      info["keypoints3d_relative"], _ = _keypoints_and_vis(
        hd.keypoints("keypoints3d_relative", idx)
      )
      info["keypoints3d17"], info["keypoints3d17_vis"] = _keypoints_and_vis(
        hd.keypoints("keypoints3d17", idx)
      )
      info["keypoints3d17_relative"], _ = _keypoints_and_vis(
        hd.keypoints("keypoints3d17_relative", idx)
      )
      if self.test_mode:
        info["joint_relative_17"] = info["keypoints3d17_relative"].copy()
    elif self.test_mode:
      info["joint_relative_17"], _ = _keypoints_and_vis(
        hd.keypoints("keypoints3d_cam", idx)
      )
    # prepare_data
    info["dataset_name"] = self.dataset_name
    info["sample_idx"] = idx
    return info
