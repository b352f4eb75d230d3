"""Single-person HybrIK demo: image / folder / video in, mesh overlay out.

The logic behind ``demo.py``. No person detector is used (nothing can be
downloaded): the person box is the whole image unless ``--bbox`` or
``--bbox-file`` gives one.

Camera convention (HybrIK is camera-free, but its uvd -> xyz step needs an
inverse intrinsic matrix and a root depth, see the spec, section 2.4):

* Pinhole camera, OpenCV frame (x right, y down, z forward, metres). Focal
  length ``--focal`` in pixels, default ``max(H, W)`` of the image (a ~53
  degree field of view across the longer side; 3DPW's phone frames have
  f ~ max(H, W)); principal point at the image centre ``((W - 1) / 2,
  (H - 1) / 2)`` (pixel centres are integer coordinates).
* Crop exactly as mmhuman3d's test pipeline: the xywh box -> centre and
  square scale (aspect 1, x1.25 margin, rotation 0) -> ``N x N`` affine crop
  (``N`` = the checkpoint's training size: read from the run's
  ``config.json``, 256 for converted mmhuman3d checkpoints), bilinear, zero
  border, BGR -> RGB, ImageNet mean/std. ``trans_inv`` is the inverse affine.
* Root depth prior: the longer side of the person box is assumed to span
  ``--person-height`` metres (1.7 m), so ``z_root = focal * 1.7 / max(w, h)``;
  ``joint_root = z_root * K^-1 [c_x, c_y, 1]`` (mm, ``c`` = box centre) and
  ``depth_factor`` = 2000 mm. The network only uses ``joint_root[2]``.
* Mesh placement: the network's vertices (metres) are not root-centred; the
  posed pelvis sits at the shaped rest pelvis ``t0 = (J_regressor @
  v_shaped)[0]``. The camera-frame mesh is ``vertices - t0 + pelvis_cam``.
  By default ``pelvis_cam`` is the translation that best reprojects the 24
  predicted SMPL joints onto the network's own 2D joint estimates (linear
  least squares on the pinhole equations, ``placement='fit'``); if that fit
  is degenerate (or puts any vertex closer than 0.1 m to the camera plane)
  or with ``--placement bbox``, it is the depth prior above, along the ray
  through the predicted 2D pelvis: ``pelvis_cam = K^-1 [u_0, v_0, 1] (z_root +
  d_0 * 2 m)`` (the network's own back-projection of joint 0).

Outputs per image (``<name>`` = file stem): ``<name>_overlay.png`` (mesh over
the image | side view), ``<name>.obj`` (camera-frame vertices in metres, y
down, + faces) and ``<name>.npz`` (see :func:`result_arrays`). A video gives
``<name>_overlay.mp4`` and one ``<name>.npz`` with per-frame arrays ``[T,
...]``.

``--bbox-file`` formats (keys: image file names -- base name or path relative
to the input folder -- or frame indices for a video; values x, y, w, h in
pixels, top-left corner + size):

* JSON: ``{"000001.jpg": [x, y, w, h], "0": [x, y, w, h], ...}``
* text: one ``key x y w h`` per line (commas or whitespace; ``#`` comments).

Images / frames without an entry use ``--bbox`` if given, else the whole
image (a warning is printed).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import cv2
import numpy as np

from hybrik_jax.model import hybrik as hybrik_model

log = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 256  # mmhuman3d's resnet34_hybrik_mixed input size.
DEFAULT_PERSON_HEIGHT_M = 1.7
DEPTH_FACTOR_MM = 2000.0
BBOX_SCALE_FACTOR = 1.25
MIN_FIT_DEPTH_M = 0.1
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
PLACEMENTS = ("fit", "bbox")
OVERLAY_ALPHA = 0.85  # mesh opacity over the image


class DemoError(ValueError):
  """Bad input to the demo (reported by ``demo.py`` as one ``error:`` line)."""


# ----------------------------------------------------------------------------
# Camera and boxes.


@dataclasses.dataclass(frozen=True)
class Camera:
  """Pinhole camera (pixels): ``u = f x / z + c_x``, ``v = f y / z + c_y``."""
  focal: float
  princpt: tuple[float, float]

  @property
  def k(self) -> np.ndarray:
    """[3, 3] float64 intrinsic matrix K."""
    return np.array([[self.focal, 0.0, self.princpt[0]],
                     [0.0, self.focal, self.princpt[1]],
                     [0.0, 0.0, 1.0]])

  @property
  def k_inv(self) -> np.ndarray:
    """[3, 3] float64 K^-1 (the model's ``intrinsic_param``)."""
    return np.linalg.inv(self.k)


def default_camera(height: int, width: int,
                   focal: Optional[float] = None) -> Camera:
  """The demo camera of an ``height x width`` image (module docstring)."""
  if focal is None:
    focal = float(max(height, width))
  if not (np.isfinite(focal) and focal > 0):
    raise DemoError(f"--focal must be a positive number of pixels, got "
                    f"{focal}")
  return Camera(float(focal), ((width - 1) / 2.0, (height - 1) / 2.0))


def parse_bbox(value: Any, what: str = "--bbox") -> np.ndarray:
  """Parses ``x,y,w,h`` (string or sequence) into a [4] float64 array."""
  if isinstance(value, str):
    parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
  else:
    parts = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [
        value]
  try:
    box = np.asarray([float(p) for p in parts], dtype=np.float64)
  except (TypeError, ValueError):
    raise DemoError(f"{what}: expected 4 numbers x,y,w,h, got {value!r}"
                    ) from None
  if box.shape != (4,) or not np.all(np.isfinite(box)):
    raise DemoError(f"{what}: expected 4 finite numbers x,y,w,h, got "
                    f"{value!r}")
  if box[2] <= 0 or box[3] <= 0:
    raise DemoError(f"{what}: box {box.tolist()} is empty (w and h must be "
                    "> 0)")
  return box


def check_bbox(box: np.ndarray, height: int, width: int,
               what: str) -> np.ndarray:
  """Rejects a box that does not overlap the image (partial overlap is OK:
  the crop pads with zeros, like mmhuman3d)."""
  x, y, w, h = box
  if x >= width or y >= height or x + w <= 0 or y + h <= 0:
    raise DemoError(f"{what}: box x,y,w,h = {box.tolist()} lies outside the "
                    f"{width}x{height} image")
  return box


def whole_image_bbox(height: int, width: int) -> np.ndarray:
  """[4] xywh box covering the image."""
  return np.array([0.0, 0.0, float(width), float(height)])


def load_bbox_file(path: str | Path) -> dict[str, np.ndarray]:
  """Reads a ``--bbox-file`` (JSON or text, see the module docstring).

  Returns:
    key (str) -> [4] xywh box.
  """
  path = Path(path)
  if not path.is_file():
    raise DemoError(f"--bbox-file {path} does not exist")
  text = path.read_text()
  boxes = {}
  stripped = text.lstrip()
  if stripped.startswith("{"):
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise DemoError(f"--bbox-file {path}: invalid JSON ({e})") from None
    for key, value in data.items():
      boxes[str(key)] = parse_bbox(value, f"--bbox-file {path} entry {key!r}")
  else:
    for num, line in enumerate(text.splitlines(), 1):
      line = line.split("#", 1)[0].strip()
      if not line:
        continue
      parts = [p for p in re.split(r"[,\s]+", line) if p]
      if len(parts) != 5:
        raise DemoError(f"--bbox-file {path} line {num}: expected 'key x y w "
                        f"h', got {line!r}")
      boxes[parts[0]] = parse_bbox(parts[1:],
                                   f"--bbox-file {path} line {num}")
  if not boxes:
    raise DemoError(f"--bbox-file {path} has no boxes")
  return boxes


def lookup_bbox(boxes: Optional[Mapping[str, np.ndarray]], keys: Sequence[str]
                ) -> Optional[np.ndarray]:
  """The first of ``keys`` present in ``boxes`` (None if none)."""
  if boxes:
    for key in keys:
      if key in boxes:
        return boxes[key]
  return None


def root_depth_prior(camera: Camera, bbox_xywh: np.ndarray,
                     person_height_m: float = DEFAULT_PERSON_HEIGHT_M
                     ) -> float:
  """``z_root = focal * person_height / max(w, h)`` (metres)."""
  return camera.focal * person_height_m / float(max(bbox_xywh[2],
                                                    bbox_xywh[3]))


def joint_root_prior(camera: Camera, bbox_xywh: np.ndarray,
                     person_height_m: float = DEFAULT_PERSON_HEIGHT_M
                     ) -> np.ndarray:
  """[3] root prior ``z_root K^-1 [c_x, c_y, 1]`` at the box centre (mm)."""
  z = root_depth_prior(camera, bbox_xywh, person_height_m)
  cx = bbox_xywh[0] + bbox_xywh[2] / 2.0
  cy = bbox_xywh[1] + bbox_xywh[3] / 2.0
  return camera.k_inv @ np.array([cx, cy, 1.0]) * z * 1000.0


# ----------------------------------------------------------------------------
# Crop (mmhuman3d test pipeline).


def crop_image(image_bgr: np.ndarray, bbox_xywh: np.ndarray,
               image_size: int) -> tuple[np.ndarray, np.ndarray]:
  """mmhuman3d's test crop of one image.

  Args:
    image_bgr: [H, W, 3] uint8 BGR.
    bbox_xywh: [4] person box (pixels).
    image_size: N, the network input size.

  Returns:
    (normalised RGB crop [N, N, 3] float32, trans_inv [2, 3] float32 crop ->
    image affine).
  """
  from hybrik_jax.data import annotations, transforms  # pylint: disable=g-import-not-at-top
  center, scale = annotations.box2cs(np.asarray(bbox_xywh, np.float64),
                                     aspect_ratio=1.0,
                                     bbox_scale_factor=BBOX_SCALE_FACTOR)
  size = (int(image_size), int(image_size))
  trans = transforms.get_affine_transform(center, scale, 0.0, size)
  trans_inv = transforms.get_affine_transform(center, scale, 0.0, size,
                                              inv=True)
  crop = cv2.warpAffine(image_bgr, trans, size, flags=cv2.INTER_LINEAR)
  crop = transforms.normalize(crop.astype(np.float32))
  return crop.astype(np.float32), trans_inv.astype(np.float32)


# ----------------------------------------------------------------------------
# Geometry after the network.


def rest_pelvis(body_model, betas: np.ndarray) -> np.ndarray:
  """[B, 3] ``t0 = (J_regressor @ v_shaped)[0]`` in metres (model frame)."""
  from hybrik_jax.smpl import lbs  # pylint: disable=g-import-not-at-top
  betas = np.asarray(betas, np.float32).reshape(-1, np.shape(betas)[-1])
  return np.asarray(lbs.shaped_points(body_model, betas)[:, 0], np.float64)


def place_vertices(vertices: np.ndarray, t0: np.ndarray,
                   pelvis_cam: np.ndarray) -> np.ndarray:
  """Camera-frame mesh ``vertices - t0 + pelvis_cam``.

  Args:
    vertices: [..., V, 3] HybrIK / SMPL vertices (metres) whose posed pelvis
      is at ``t0``.
    t0: [..., 3] rest pelvis (metres).
    pelvis_cam: [..., 3] pelvis in the camera frame (metres).

  Returns:
    [..., V, 3] camera-frame vertices (metres).
  """
  vertices = np.asarray(vertices, np.float64)
  return (vertices - np.asarray(t0, np.float64)[..., None, :] +
          np.asarray(pelvis_cam, np.float64)[..., None, :])


def uvd_to_image(uvd: np.ndarray, trans_inv: np.ndarray,
                 image_size: int) -> np.ndarray:
  """Network uvd [..., J, 3] (in [-0.5, 0.5)) -> image pixels [..., J, 2]."""
  uvd = np.asarray(uvd, np.float64)
  crop = (uvd[..., :2] + 0.5) * float(image_size)  # [..., J, 2]
  t = np.asarray(trans_inv, np.float64)
  return crop @ np.swapaxes(t[..., :2], -1, -2) + t[..., None, :, 2]


def fit_translation(joints_rel: np.ndarray, uv: np.ndarray,
                    camera: Camera) -> np.ndarray:
  """Translation ``t`` that best projects ``joints_rel + t`` onto ``uv``.

  Linear least squares on the pinhole equations ``f (x + t_x) = (u - c_x)
  (z + t_z)`` and ``f (y + t_y) = (v - c_y) (z + t_z)`` for all joints.

  Args:
    joints_rel: [J, 3] joints (metres) relative to the point being placed.
    uv: [J, 2] their observed image positions (pixels).
    camera: the camera.

  Returns:
    [3] translation (metres); NaNs if the system is degenerate.
  """
  p = np.asarray(joints_rel, np.float64)
  uv = np.asarray(uv, np.float64)
  f = camera.focal
  du = uv[:, 0] - camera.princpt[0]
  dv = uv[:, 1] - camera.princpt[1]
  zeros, ones = np.zeros_like(du), np.ones_like(du)
  a = np.concatenate([np.stack([f * ones, zeros, -du], -1),
                      np.stack([zeros, f * ones, -dv], -1)])  # [2J, 3]
  b = np.concatenate([du * p[:, 2] - f * p[:, 0],
                      dv * p[:, 2] - f * p[:, 1]])  # [2J]
  t, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
  if rank < 3 or not np.all(np.isfinite(t)):
    return np.full(3, np.nan)
  return t


# ----------------------------------------------------------------------------
# Checkpoint and model.


def checkpoint_image_size(checkpoint: str | Path) -> Optional[int]:
  """The training input size recorded next to a checkpoint, if any.

  Looks for the training run's ``config.json`` (``model.image_size``) in the
  checkpoint folder and up to two parents (run / checkpoints / step). Returns
  None when there is none (converted mmhuman3d checkpoints: 256).
  """
  path = Path(checkpoint).absolute()
  for folder in (path, path.parent, path.parent.parent):
    cfg = folder / "config.json"
    if cfg.is_file():
      try:
        size = json.loads(cfg.read_text())["model"]["image_size"]
        return int(size)
      except (ValueError, KeyError, TypeError):
        return None
  return None


def resolve_image_size(checkpoint: str | Path,
                       image_size: Optional[int]) -> int:
  """``--image-size`` checked against the checkpoint's training size."""
  trained = checkpoint_image_size(checkpoint)
  if image_size is None:
    image_size = trained or DEFAULT_IMAGE_SIZE
  elif trained is not None and int(image_size) != trained:
    raise DemoError(f"--image-size {image_size} differs from the size the "
                    f"checkpoint {checkpoint} was trained at ({trained})")
  image_size = int(image_size)
  if image_size < 32 or image_size % 32:
    raise DemoError(f"--image-size must be a positive multiple of 32, got "
                    f"{image_size}")
  return image_size


class Predictor:
  """Jitted HybrIK inference on fixed-size batches + mesh placement.

  Args:
    variables: model variables with ``constants/smpl``
      (``checkpointing.load_inference_variables``).
    image_size: network input size N.
    batch_size: images per jitted call (the last batch is padded, so one
      compilation serves a whole run).
    person_height_m: root depth prior (module docstring).
    placement: 'fit' (reprojection fit, default) or 'bbox' (depth prior).
  """

  def __init__(self, variables: Mapping[str, Any], image_size: int,
               batch_size: int = 8,
               person_height_m: float = DEFAULT_PERSON_HEIGHT_M,
               placement: str = "fit"):
    import jax  # pylint: disable=g-import-not-at-top
    if placement not in PLACEMENTS:
      raise DemoError(f"--placement must be one of {PLACEMENTS}, got "
                      f"{placement!r}")
    if batch_size < 1:
      raise DemoError(f"--batch-size must be >= 1, got {batch_size}")
    if not person_height_m > 0:
      raise DemoError(f"--person-height must be > 0, got {person_height_m}")
    self.variables = jax.device_put(dict(variables))
    self.body = hybrik_model.body_model_from_constants(
        jax.tree.map(np.asarray, dict(variables["constants"]["smpl"])))
    self.faces = np.asarray(self.body.faces, np.int64)  # [F, 3]
    self.image_size = int(image_size)
    self.batch_size = int(batch_size)
    self.person_height_m = float(person_height_m)
    self.placement = placement
    self._predict = hybrik_model.predict
    from hybrik_jax import render  # pylint: disable=g-import-not-at-top
    self.face_colors = render.part_face_colors(
        np.asarray(self.body.lbs_weights), self.faces)  # [F, 3]

  def __call__(self, images_bgr: Sequence[np.ndarray],
               bboxes: Sequence[np.ndarray],
               cameras: Sequence[Camera]) -> list[dict[str, np.ndarray]]:
    """Predicts and places the meshes of a list of images (any length)."""
    results = []
    for start in range(0, len(images_bgr), self.batch_size):
      sl = slice(start, start + self.batch_size)
      results.extend(self._batch(images_bgr[sl], bboxes[sl], cameras[sl]))
    return results

  def _batch(self, images_bgr, bboxes, cameras):
    n, b, size = len(images_bgr), self.batch_size, self.image_size
    crops = np.zeros((b, size, size, 3), np.float32)
    # Padding rows keep the dummy camera; real rows are overwritten below.
    trans_inv, k_inv, joint_root, _ = hybrik_model.dummy_camera(b)
    for i, (img, box, cam) in enumerate(zip(images_bgr, bboxes, cameras)):
      crops[i], trans_inv[i] = crop_image(img, box, size)
      k_inv[i] = cam.k_inv
      joint_root[i] = joint_root_prior(cam, box, self.person_height_m)
    depth_factor = np.full((b, 1), DEPTH_FACTOR_MM, np.float32)
    out = self._predict(self.variables, crops, trans_inv, k_inv, joint_root,
                        depth_factor)
    out = {k: np.asarray(v)[:n] for k, v in out.items()}
    t0 = rest_pelvis(self.body, out["pred_shape"])  # [n, 3]
    results = []
    for i in range(n):
      results.append(self._place(
          {k: v[i] for k, v in out.items()}, t0[i], trans_inv[i],
          joint_root[i], bboxes[i], cameras[i]))
    return results

  def _place(self, out, t0, trans_inv, joint_root_mm, bbox, camera):
    uvd = out["pred_uvd_jts"].reshape(29, 3)
    uv = uvd_to_image(uvd, trans_inv, self.image_size)  # [29, 2]
    joints24_rel = out["pred_xyz_jts_24_struct"].reshape(24, 3) * (
        DEPTH_FACTOR_MM / 1000.0)  # [24, 3] m, pelvis-relative
    z_prior = joint_root_mm[2] / 1000.0
    # Depth prior along the ray through the predicted 2D pelvis.
    pelvis_prior = camera.k_inv @ np.array([uv[0, 0], uv[0, 1], 1.0]) * (
        z_prior + uvd[0, 2] * DEPTH_FACTOR_MM / 1000.0)
    placement, pelvis = "bbox", pelvis_prior
    verts = place_vertices(out["pred_vertices"], t0, pelvis)  # [V, 3]
    if self.placement == "fit":
      t = fit_translation(joints24_rel, uv[:24], camera)
      if np.all(np.isfinite(t)):
        fitted = place_vertices(out["pred_vertices"], t0, t)
        # A fit that puts part of the mesh behind the camera is rejected.
        if fitted[:, 2].min() > MIN_FIT_DEPTH_M:
          placement, pelvis, verts = "fit", t, fitted
    joints17 = np.asarray(self.body.J_regressor_extra, np.float64) @ verts
    return {
        "vertices": verts.astype(np.float32),
        "pose": out["pred_pose"].reshape(24, 3, 3),
        "betas": out["pred_shape"].reshape(-1),
        "phis": out["pred_phi"].reshape(23, 2),
        "xyz_24": (joints24_rel + pelvis).astype(np.float32),
        "xyz_17": joints17.astype(np.float32),
        "uvd": uvd.astype(np.float32),
        "uv": uv.astype(np.float32),
        "pelvis_cam": pelvis.astype(np.float32),
        "pelvis_prior": pelvis_prior.astype(np.float32),
        "placement_fit": np.asarray(placement == "fit"),
        "t0": np.asarray(t0, np.float32),
        "joint_root_mm": np.asarray(joint_root_mm, np.float32),
        "focal": np.float32(camera.focal),
        "princpt": np.asarray(camera.princpt, np.float32),
        "bbox_xywh": np.asarray(bbox, np.float32),
    }


# ----------------------------------------------------------------------------
# Rendering and writing.


def render_overlay(image_bgr: np.ndarray, vertices_cam: np.ndarray,
                   faces: np.ndarray, camera: Camera,
                   face_colors: Optional[np.ndarray] = None,
                   alpha: float = OVERLAY_ALPHA) -> np.ndarray:
  """[H, 2W, 3] uint8 BGR: mesh over the image | side view on white.

  The side view turns the mesh 90 degrees about the vertical axis through its
  centroid and frames it with the same focal length.
  """
  from hybrik_jax import render  # pylint: disable=g-import-not-at-top
  h, w = image_bgr.shape[:2]
  rgb = np.ascontiguousarray(image_bgr[..., ::-1])
  front = render.render_mesh(vertices_cam, faces, camera.focal,
                             camera.princpt, (h, w), face_colors=face_colors,
                             background=rgb)
  mask = front["mask"][..., None]
  blend = np.where(mask, alpha * front["image"] + (1 - alpha) * rgb, rgb)
  side_verts = render.side_view(vertices_cam)
  fitted, focal, princpt = render.fit_camera(side_verts, (h, w),
                                             focal=camera.focal, margin=0.08)
  side = render.render_mesh(fitted, faces, focal, princpt, (h, w),
                            face_colors=face_colors)["image"]
  panel = np.concatenate([np.round(blend).astype(np.uint8), side], axis=1)
  return np.ascontiguousarray(panel[..., ::-1])


def write_obj(path: str | Path, vertices: np.ndarray,
              faces: np.ndarray) -> None:
  """Wavefront OBJ: ``v x y z`` (metres) and 1-based ``f i j k``."""
  vertices = np.asarray(vertices, np.float64)
  faces = np.asarray(faces, np.int64) + 1
  lines = ["# hybrik-jax demo mesh: camera frame (OpenCV: x right, y down, "
           "z forward), metres"]
  lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
  lines += [f"f {a} {b} {c}" for a, b, c in faces]
  Path(path).write_text("\n".join(lines) + "\n")


NPZ_KEYS = ("pose", "betas", "phis", "xyz_24", "xyz_17", "uvd", "uv",
            "vertices", "pelvis_cam", "pelvis_prior", "placement_fit", "t0",
            "joint_root_mm", "focal", "princpt", "bbox_xywh")


def result_arrays(results: Sequence[Mapping[str, np.ndarray]],
                  stack: bool) -> dict[str, np.ndarray]:
  """The npz content of one image (``stack=False``) or a video ([T, ...]).

  Keys: pose [24, 3, 3] (global pelvis rotation + 23 parent-relative),
  betas [10], phis [23, 2] (cos, sin, raw), xyz_24 [24, 3] (SMPL joints) and
  xyz_17 [17, 3] (H36M joints from the mesh) in camera metres, uvd [29, 3]
  (network output in [-0.5, 0.5)), uv [29, 2] (its image pixels), vertices
  [6890, 3] camera metres, pelvis_cam [3] (m), pelvis_prior [3] (m, the
  depth-prior placement), placement_fit (bool: pelvis_cam from the
  reprojection fit), t0 [3] (rest pelvis, m), joint_root_mm [3] (network
  input), focal, princpt [2] (px), bbox_xywh [4] (px).
  """
  if stack:
    return {k: np.stack([r[k] for r in results]) for k in NPZ_KEYS}
  return {k: np.asarray(results[0][k]) for k in NPZ_KEYS}


# ----------------------------------------------------------------------------
# Inputs.


def load_image(path: Path) -> np.ndarray:
  """[H, W, 3] uint8 BGR, or DemoError naming the file."""
  img = cv2.imread(str(path), cv2.IMREAD_COLOR)
  if img is None:
    raise DemoError(f"cannot read image {path}")
  return img


def list_images(folder: Path) -> list[Path]:
  """Image files directly in ``folder`` (sorted), DemoError if none."""
  files = sorted(p for p in folder.iterdir()
                 if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
  if not files:
    raise DemoError(f"--input folder {folder} contains no images "
                    f"({', '.join(IMAGE_EXTS)})")
  return files


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
  for start in range(0, len(items), size):
    yield items[start:start + size]


def _bbox_for(boxes, keys: Sequence[str], default: Optional[np.ndarray],
              h: int, w: int, what: str, warned: list) -> np.ndarray:
  box = lookup_bbox(boxes, keys)
  if box is None:
    if boxes is not None and not warned:
      log.warning("%s has no --bbox-file entry: using %s", what,
                  "--bbox" if default is not None else "the whole image")
      warned.append(True)
    box = default if default is not None else whole_image_bbox(h, w)
  return check_bbox(np.asarray(box, np.float64), h, w, what)


def _iter_video(path: Path) -> Iterator[np.ndarray]:
  cap = cv2.VideoCapture(str(path))
  try:
    while True:
      ok, frame = cap.read()
      if not ok:
        break
      yield frame
  finally:
    cap.release()


def _video_info(path: Path) -> tuple[float, int]:
  cap = cv2.VideoCapture(str(path))
  try:
    if not cap.isOpened():
      raise DemoError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
  finally:
    cap.release()
  return (fps if fps > 0 else 25.0), count


# ----------------------------------------------------------------------------
# Entry point.


def run(checkpoint: str | Path, input_path: str | Path,
        out_dir: str | Path = "runs/demo", bbox: Optional[str] = None,
        bbox_file: Optional[str | Path] = None, focal: Optional[float] = None,
        image_size: Optional[int] = None, batch_size: int = 8,
        person_height_m: float = DEFAULT_PERSON_HEIGHT_M,
        placement: str = "fit", progress: bool = True,
        variables: Optional[Mapping[str, Any]] = None) -> dict:
  """Runs the demo on an image, a folder of images or a video.

  Args:
    checkpoint: converted checkpoint folder or training run / step folder.
    input_path: image file, folder of images, or video (.mp4, .avi, ...).
    out_dir: output folder (created).
    bbox: ``"x,y,w,h"`` person box for every image / frame.
    bbox_file: per-image / per-frame boxes (module docstring).
    focal: focal length in pixels (default ``max(H, W)``).
    image_size: network input size (default: the checkpoint's).
    batch_size: images per jitted call.
    person_height_m: root depth prior (metres spanned by the longer box side).
    placement: 'fit' or 'bbox' (module docstring).
    progress: tqdm progress bars for folders and videos.
    variables: already loaded variables (skips loading ``checkpoint``).

  Returns:
    {'outputs': [written paths], 'num_images': int, 'kind': 'image' |
    'folder' | 'video'}.

  Raises:
    DemoError: bad input (missing checkpoint / input, unreadable image,
      empty folder, bad box).
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  checkpoint = Path(checkpoint)
  if not checkpoint.exists():
    raise DemoError(f"checkpoint {checkpoint} does not exist")
  input_path = Path(input_path)
  if not input_path.exists():
    raise DemoError(f"--input {input_path} does not exist")
  default_box = parse_bbox(bbox) if bbox is not None else None
  boxes = load_bbox_file(bbox_file) if bbox_file is not None else None
  if focal is not None and not (math.isfinite(focal) and focal > 0):
    raise DemoError(f"--focal must be a positive number of pixels, got "
                    f"{focal}")
  size = resolve_image_size(checkpoint, image_size)

  if input_path.is_dir():
    kind, items = "folder", list_images(input_path)
  elif input_path.suffix.lower() in VIDEO_EXTS:
    kind, items = "video", None
    _video_info(input_path)  # fail before loading the model
  else:
    kind, items = "image", [input_path]
    load_image(input_path)  # fail before loading the model

  if variables is None:
    from hybrik_jax.train import checkpointing  # pylint: disable=g-import-not-at-top
    try:
      variables = checkpointing.load_inference_variables(checkpoint)
    except (checkpointing.CheckpointNotFoundError, OSError, ValueError) as e:
      raise DemoError(f"cannot load checkpoint {checkpoint}: {e}") from None
  if kind == "video":
    batch_size = min(batch_size, max(_video_info(input_path)[1], 1))
  else:
    batch_size = min(batch_size, len(items))
  predictor = Predictor(variables, size, batch_size, person_height_m,
                        placement)
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  if kind == "video":
    return _run_video(predictor, input_path, out_dir, default_box, boxes,
                      focal, progress)

  outputs, warned = [], []
  bar = tqdm(total=len(items), desc="demo", unit="img",
             disable=not progress or kind == "image")
  for chunk in _chunks(items, predictor.batch_size):
    images, bboxes, cams = [], [], []
    for path in chunk:
      img = load_image(path)
      h, w = img.shape[:2]
      rel = (str(path.relative_to(input_path)) if kind == "folder"
             else path.name)
      bboxes.append(_bbox_for(boxes, (rel, path.name, path.stem),
                              default_box, h, w, f"{path}", warned))
      images.append(img)
      cams.append(default_camera(h, w, focal))
    for path, img, cam, res in zip(chunk, images, cams,
                                   predictor(images, bboxes, cams)):
      stem = out_dir / path.stem
      overlay = render_overlay(img, res["vertices"], predictor.faces, cam,
                               predictor.face_colors)
      cv2.imwrite(f"{stem}_overlay.png", overlay)
      write_obj(f"{stem}.obj", res["vertices"], predictor.faces)
      np.savez(f"{stem}.npz", **result_arrays([res], stack=False))
      outputs += [Path(f"{stem}_overlay.png"), Path(f"{stem}.obj"),
                  Path(f"{stem}.npz")]
      bar.update(1)
  bar.close()
  return {"outputs": outputs, "num_images": len(items), "kind": kind}


def _run_video(predictor: Predictor, path: Path, out_dir: Path,
               default_box, boxes, focal, progress) -> dict:
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  fps, count = _video_info(path)
  stem = out_dir / path.stem
  mp4 = Path(f"{stem}_overlay.mp4")
  writer, results, warned, index = None, [], [], 0
  bar = tqdm(total=count or None, desc="demo", unit="frame",
             disable=not progress)
  frames = _iter_video(path)
  try:
    while True:
      chunk = [f for _, f in zip(range(predictor.batch_size), frames)]
      if not chunk:
        break
      h, w = chunk[0].shape[:2]
      cam = default_camera(h, w, focal)
      bboxes = [_bbox_for(boxes, (str(index + i),), default_box, h, w,
                          f"{path} frame {index + i}", warned)
                for i in range(len(chunk))]
      preds = predictor(chunk, bboxes, [cam] * len(chunk))
      for frame, res in zip(chunk, preds):
        overlay = render_overlay(frame, res["vertices"], predictor.faces, cam,
                                 predictor.face_colors)
        if writer is None:
          writer = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"),
                                   fps, (overlay.shape[1], overlay.shape[0]))
          if not writer.isOpened():
            raise DemoError(f"cannot write video {mp4}")
        writer.write(overlay)
        results.append(res)
        bar.update(1)
      index += len(chunk)
  finally:
    bar.close()
    if writer is not None:
      writer.release()
  if not results:
    raise DemoError(f"cannot read any frame of video {path}")
  arrays = result_arrays(results, stack=True)
  arrays["fps"] = np.float32(fps)
  np.savez(f"{stem}.npz", **arrays)
  return {"outputs": [mp4, Path(f"{stem}.npz")], "num_images": len(results),
          "kind": "video"}
