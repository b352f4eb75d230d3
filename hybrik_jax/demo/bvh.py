"""BVH (Biovision hierarchy) export of one tracked person, and a BVH reader.

The skeleton is SMPL's 24 joints (``SMPL_JOINT_NAMES``, parents
``hybrik_jax.smpl.tables.SMPL_PARENTS``) with one End Site on each of the 5
leaf joints (L_Foot, R_Foot, Head, L_Hand, R_Hand).

Conventions of the files written here (:func:`write_bvh`, :func:`bvh_text`):

* Rest pose: SMPL's rest joints of the track's shape, ``J_regressor @
  v_shaped`` (:func:`smpl_rest_skeleton`). The shape is the per-coefficient
  *median* of the per-frame betas over the track (robust to a few bad frames;
  ``reduce='mean'`` gives the mean): a BVH has one skeleton per file. Joint
  OFFSETs are the rest bones ``J[j] - J[parent]`` in the SMPL template frame
  (+y up); End Site OFFSETs are HybrIK's 5 leaf vertices (head top, middle
  finger tips, big toes) relative to their parent joint. The ROOT OFFSET is
  0 0 0 and its position channels hold the pelvis' world position, so
  readers that add the root's channels to its offset and readers that
  replace the offset by them agree.
* Channels: the root has ``Xposition Yposition Zposition`` + 3 rotations,
  every other joint 3 rotations. ``order='ZYX'`` (default) writes
  ``Zrotation Yrotation Xrotation`` with ``R = Rz(z) @ Ry(y) @ Rx(x)``;
  ``order='XYZ'`` writes ``Xrotation Yrotation Zrotation`` with ``R = Rx(x)
  @ Ry(y) @ Rz(z)``. In general the local rotation is the product of the
  channel rotations *in the order they are listed* (intrinsic rotations,
  the way Blender's and most readers interpret BVH channels), angles in
  degrees, right-handed (``Rz(a)`` turns +x towards +y). Angles are unwrapped
  over time (no 360-degree jumps). A joint's world transform is its parent's
  world transform times ``[R_local | OFFSET]``.
* Local rotations are the network's ``pred_pose`` [T, 24, 3, 3]: row 0 is the
  global pelvis orientation in the camera frame, rows 1..23 are relative to
  the parent joint (SMPL's convention, the rest pose being the identity).
* Units: ``units='m'`` (default; Blender's BVH importer at scale 1 gives
  metres) or ``units='cm'`` (positions and offsets x 100).
* Axes: ``up='y'`` (default) applies one global rotation ``U = diag(1, -1,
  -1)`` (180 degrees about the camera's x axis) to the root: the BVH world is
  x right, y up, z towards the camera (right-handed, Y-up as animation tools
  expect), and the skeleton stands upright. ``up='camera'`` keeps the demo
  camera's OpenCV axes (x right, y down, z forward), the frame of the demo's
  npz / OBJ outputs; a Y-up tool then shows the motion upside down.
* ``Frame Time`` = 1 / fps of the video.

With these, the world joint positions of frame t (before ``U`` and the unit
scale) are SMPL's forward kinematics of the rest joints with ``pred_pose[t]``,
shifted so that the pelvis is at ``pelvis[t]``: the posed SMPL skeleton with
translation ``pelvis[t] - J[0]`` (:func:`bvh_positions` of the parsed file
reproduces them). A track's per-frame shapes differ from the median shape, so
these are not exactly the demo's per-frame ``xyz_24``.

Reading (:func:`parse_bvh`, :func:`bvh_positions`) accepts general BVH files:
any rotation/position channels per joint, several End Sites, joint names with
spaces. Position channels are added to the joint's OFFSET (the two readings
of a root with OFFSET 0 0 0 agree).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hybrik_jax import errors
from hybrik_jax.smpl import tables

SMPL_JOINT_NAMES = (
  "Pelvis",
  "L_Hip",
  "R_Hip",
  "Spine1",
  "L_Knee",
  "R_Knee",
  "Spine2",
  "L_Ankle",
  "R_Ankle",
  "Spine3",
  "L_Foot",
  "R_Foot",
  "Neck",
  "L_Collar",
  "R_Collar",
  "Head",
  "L_Shoulder",
  "R_Shoulder",
  "L_Elbow",
  "R_Elbow",
  "L_Wrist",
  "R_Wrist",
  "L_Hand",
  "R_Hand",
)

EULER_ORDERS = ("ZYX", "XYZ", "XZY", "YXZ", "YZX", "ZXY")
UNITS = {"m": 1.0, "cm": 100.0}
UPS = ("y", "camera")
# 180 degrees about the camera's x axis: OpenCV (y down, z forward) -> y up,
# z towards the camera.
Y_UP_FROM_CAMERA = np.diag([1.0, -1.0, -1.0])

_AXIS = {"X": 0, "Y": 1, "Z": 2}
_ORTHO_TOL = 1e-2  # max |R^T R - I| entry accepted as a rotation
_DECIMALS = 6


# ---------------------------------------------------------------- rotations


def _check_order(order: str) -> str:
  if order not in EULER_ORDERS:
    raise ValueError(f"order must be one of {EULER_ORDERS}, got {order!r}")
  return order


def axis_rotation(axis: str, angle_rad: np.ndarray) -> np.ndarray:
  """[...] angles (radians) about ``axis`` ('X', 'Y' or 'Z') -> [..., 3, 3]."""
  k = _AXIS[axis]
  p, q = (k + 1) % 3, (k + 2) % 3
  a = np.asarray(angle_rad, np.float64)
  c, s = np.cos(a), np.sin(a)
  r = np.zeros(a.shape + (3, 3))
  r[..., k, k] = 1.0
  r[..., p, p] = c
  r[..., q, q] = c
  r[..., q, p] = s
  r[..., p, q] = -s
  return r


def euler_to_matrix(angles_deg: np.ndarray, order: str = "ZYX") -> np.ndarray:
  """[..., 3] Euler angles (degrees, in ``order``) -> [..., 3, 3].

  ``R = R_order[0](angles[..., 0]) @ R_order[1](...) @ R_order[2](...)``,
  e.g. ``order='ZYX'``: ``R = Rz(a0) @ Ry(a1) @ Rx(a2)`` (intrinsic).
  """
  _check_order(order)
  rad = np.deg2rad(np.asarray(angles_deg, np.float64))
  r = axis_rotation(order[0], rad[..., 0])
  r = r @ axis_rotation(order[1], rad[..., 1])
  return r @ axis_rotation(order[2], rad[..., 2])


def matrix_to_euler(rot: np.ndarray, order: str = "ZYX") -> np.ndarray:
  """[..., 3, 3] rotations -> [..., 3] Euler angles (degrees), inverse of
  :func:`euler_to_matrix`.

  For ``R = Ri(a) Rj(b) Rk(c)`` (``order = ijk``, ``s = +1`` for the cyclic
  orders XYZ / YZX / ZXY, else -1): ``b = atan2(s R[i,k], hypot(R[i,i],
  R[i,j]))`` in [-90, 90], ``a = atan2(-s R[j,k], R[k,k])``, and ``c`` from
  the residual ``Rj(b)^T Ri(a)^T R``, which is a rotation about axis k for
  any ``a`` when ``|b|`` = 90 degrees. Near gimbal lock ``a`` alone is
  ill-conditioned (its split with ``c`` is arbitrary at exactly 90 degrees),
  but the residual makes ``c`` absorb its error, so the angles always
  reproduce R to rounding error.
  """
  _check_order(order)
  r = np.asarray(rot, np.float64)
  i, j, k = (_AXIS[ax] for ax in order)
  s = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
  a = np.arctan2(-s * r[..., j, k], r[..., k, k])
  b = np.arctan2(
    np.clip(s * r[..., i, k], -1.0, 1.0), np.hypot(r[..., i, i], r[..., i, j])
  )
  first = axis_rotation(order[0], a) @ axis_rotation(order[1], b)
  resid = np.swapaxes(first, -1, -2) @ r
  p, q = (k + 1) % 3, (k + 2) % 3
  c = np.arctan2(resid[..., q, p], resid[..., p, p])
  return np.rad2deg(np.stack([a, b, c], axis=-1))


# ---------------------------------------------------------------- skeleton


def smpl_rest_skeleton(
  body_model, betas: np.ndarray, reduce: str = "median"
) -> np.ndarray:
  """Rest skeleton of a track's shape: [29, 3] metres, template frame (+y up).

  Rows 0..23 are SMPL's rest joints ``J_regressor @ v_shaped``, rows 24..28
  HybrIK's leaf vertices (head top, left / right middle finger tip, left /
  right big toe; the BVH End Sites), from
  :func:`hybrik_jax.smpl.numpy_kinematics.rest_skeleton29`.

  Args:
    body_model: :class:`hybrik_jax.smpl.SMPLModel`.
    betas: [T, NB] per-frame shapes of the track (or one [NB] shape).
    reduce: 'median' (per-coefficient median over frames, the default) or
      'mean'.
  """
  from hybrik_jax.smpl import numpy_kinematics

  betas = np.asarray(betas, np.float64)
  if betas.ndim == 1:
    betas = betas[None]
  if betas.ndim != 2 or betas.shape[0] == 0:
    raise ValueError(f"betas must be [T, NB] with T > 0, got {betas.shape}")
  if not np.all(np.isfinite(betas)):
    raise ValueError("betas has non-finite values")
  if reduce == "median":
    shape = np.median(betas, axis=0)
  elif reduce == "mean":
    shape = np.mean(betas, axis=0)
  else:
    raise ValueError(f"reduce must be 'median' or 'mean', got {reduce!r}")
  return numpy_kinematics.rest_skeleton29(body_model, shape[None])[0]


def _end_site_offsets(rest: np.ndarray) -> dict[int, np.ndarray]:
  """Leaf joint -> End Site offset (metres, template frame)."""
  leaves = tables.HYBRIK_PARENTS[tables.NUM_SMPL_JOINTS :]
  if rest.shape[0] == tables.NUM_HYBRIK_JOINTS:
    return {
      p: rest[tables.NUM_SMPL_JOINTS + n] - rest[p]
      for n, p in enumerate(leaves)
    }
  # 24 joints only: continue the incoming bone by half its length.
  parents = tables.SMPL_PARENTS
  return {p: 0.5 * (rest[p] - rest[parents[p]]) for p in leaves}


def _validate(pose, pelvis, rest, fps) -> tuple[np.ndarray, ...]:
  pose = np.asarray(pose, np.float64)
  if pose.ndim != 4 or pose.shape[1:] != (24, 3, 3):
    raise ValueError(f"pose must be [T, 24, 3, 3], got {pose.shape}")
  t = pose.shape[0]
  if t == 0:
    raise ValueError("pose has no frames (T = 0)")
  if not np.all(np.isfinite(pose)):
    raise ValueError("pose has non-finite values")
  eye_err = np.abs(np.swapaxes(pose, -1, -2) @ pose - np.eye(3)).max(
    axis=(-2, -1)
  )
  bad = np.argwhere((eye_err > _ORTHO_TOL) | (np.linalg.det(pose) <= 0))
  if bad.size:
    f, j = bad[0]
    raise ValueError(
      f"pose[{f}, {j}] is not a rotation matrix ({len(bad)} such entries)"
    )
  pelvis = np.asarray(pelvis, np.float64)
  if pelvis.shape != (t, 3):
    raise ValueError(f"pelvis must be [T, 3] = [{t}, 3], got {pelvis.shape}")
  if not np.all(np.isfinite(pelvis)):
    raise ValueError("pelvis has non-finite values")
  rest = np.asarray(rest, np.float64)
  if rest.shape not in ((24, 3), (29, 3)):
    raise ValueError(
      f"rest_joints must be [24, 3] or [29, 3], got {rest.shape}"
    )
  if not np.all(np.isfinite(rest)):
    raise ValueError("rest_joints has non-finite values")
  fps = float(fps)
  if not (np.isfinite(fps) and fps > 0):
    raise ValueError(f"fps must be a positive number, got {fps}")
  return pose, pelvis, rest, fps


def _children(parents: Sequence[int]) -> list[list[int]]:
  kids = [[] for _ in parents]
  for j, p in enumerate(parents):
    if p >= 0:
      kids[p].append(j)
  return kids


def _fmt(v: np.ndarray) -> str:
  return " ".join(f"{x:.{_DECIMALS}f}" for x in v)


def bvh_text(
  pose: np.ndarray,
  pelvis: np.ndarray,
  rest_joints: np.ndarray,
  fps: float,
  *,
  order: str = "ZYX",
  units: str = "m",
  up: str = "y",
  names: Sequence[str] = SMPL_JOINT_NAMES,
) -> str:
  """The BVH file of one track (conventions: module docstring).

  Args:
    pose: [T, 24, 3, 3] ``pred_pose`` (global pelvis rotation in the camera
      frame, then parent-relative rotations).
    pelvis: [T, 3] pelvis position in the camera frame, metres (the demo's
      ``pelvis_cam``).
    rest_joints: [29, 3] (:func:`smpl_rest_skeleton`) or [24, 3] rest joints
      in metres (template frame); with 24, each End Site continues its leaf
      joint's bone by half its length.
    fps: frames per second of the video (Frame Time = 1 / fps).
    order: Euler channel order, 'ZYX' (default) or 'XYZ' (or another of
      ``EULER_ORDERS``).
    units: 'm' (default) or 'cm'.
    up: 'y' (default, Y-up world) or 'camera' (OpenCV camera axes).
    names: 24 joint names (SMPL order).

  Raises:
    ValueError: naming the bad argument (shape, T = 0, non-finite values, a
      pose entry that is not a rotation, fps <= 0, unknown order / units /
      up).
  """
  pose, pelvis, rest, fps = _validate(pose, pelvis, rest_joints, fps)
  _check_order(order)
  if units not in UNITS:
    raise ValueError(f"units must be one of {tuple(UNITS)}, got {units!r}")
  if up not in UPS:
    raise ValueError(f"up must be one of {UPS}, got {up!r}")
  names = tuple(names)
  if len(names) != 24 or len(set(names)) != 24:
    raise ValueError(f"names must be 24 distinct joint names, got {names}")
  scale = UNITS[units]
  parents = tables.SMPL_PARENTS
  if up == "y":
    pose = pose.copy()
    pose[:, 0] = Y_UP_FROM_CAMERA @ pose[:, 0]
    pelvis = pelvis @ Y_UP_FROM_CAMERA.T
  angles = matrix_to_euler(pose, order)  # [T, 24, 3] degrees
  angles = np.unwrap(angles, axis=0, period=360.0)
  offsets = np.zeros((24, 3))
  offsets[1:] = rest[1:24] - rest[np.asarray(parents[1:])]
  offsets *= scale
  ends = {j: v * scale for j, v in _end_site_offsets(rest).items()}
  rot_channels = " ".join(f"{ax}rotation" for ax in order)
  kids = _children(parents)

  lines = ["HIERARCHY"]
  dfs = []

  def emit(j: int, depth: int) -> None:
    pad = "  " * depth
    dfs.append(j)
    lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {names[j]}")
    lines.append(f"{pad}{{")
    lines.append(f"{pad}  OFFSET {_fmt(offsets[j])}")
    if j == 0:
      lines.append(
        f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot_channels}"
      )
    else:
      lines.append(f"{pad}  CHANNELS 3 {rot_channels}")
    for c in kids[j]:
      emit(c, depth + 1)
    if j in ends:
      lines.extend(
        [
          f"{pad}  End Site",
          f"{pad}  {{",
          f"{pad}    OFFSET {_fmt(ends[j])}",
          f"{pad}  }}",
        ]
      )
    lines.append(f"{pad}}}")

  emit(0, 0)
  t = pose.shape[0]
  lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / fps:.10g}"]
  motion = np.concatenate(
    [pelvis * scale, angles[:, dfs].reshape(t, -1)], axis=1
  )  # [T, 3 + 72]
  buf = io.StringIO()
  np.savetxt(buf, motion, fmt=f"%.{_DECIMALS}f", delimiter=" ")
  return "\n".join(lines) + "\n" + buf.getvalue()


def write_bvh(
  path: str | Path,
  pose: np.ndarray,
  pelvis: np.ndarray,
  rest_joints: np.ndarray,
  fps: float,
  **kwargs,
) -> Path:
  """Writes :func:`bvh_text` (same arguments) to ``path``; returns it."""
  text = bvh_text(pose, pelvis, rest_joints, fps, **kwargs)
  path = Path(path)
  path.write_text(text)
  return path


def export_track_bvh(
  path: str | Path,
  body_model,
  pose: np.ndarray,
  betas: np.ndarray,
  pelvis: np.ndarray,
  fps: float,
  *,
  reduce: str = "median",
  **kwargs,
) -> Path:
  """One track -> BVH: :func:`smpl_rest_skeleton` of ``betas`` [T, 10]
  (median over frames by default) + :func:`write_bvh`.

  Args:
    path: output ``.bvh`` file.
    body_model: :class:`hybrik_jax.smpl.SMPLModel`.
    pose: [T, 24, 3, 3] ``pred_pose`` (the demo's ``pose``).
    betas: [T, 10] ``pred_shape`` (the demo's ``betas``).
    pelvis: [T, 3] camera-frame pelvis, metres (the demo's ``pelvis_cam``).
    fps: the video's frame rate.
    reduce: 'median' or 'mean' shape over the track.
    **kwargs: ``order``, ``units``, ``up``, ``names`` of :func:`bvh_text`.
  """
  rest = smpl_rest_skeleton(body_model, betas, reduce=reduce)
  return write_bvh(path, pose, pelvis, rest, fps, **kwargs)


# ---------------------------------------------------------------- reading


class BVHFormatError(errors.InputError, ValueError):
  """A BVH file that cannot be parsed (names the line and what was wrong)."""


@dataclasses.dataclass(frozen=True)
class BVH:
  """A parsed BVH file. Joints are in file (depth-first) order.

  Attributes:
    names: [J] joint names.
    parents: [J] parent index (-1 for a root).
    offsets: [J, 3] OFFSETs (file units).
    channels: [J] channel names of each joint, in file order.
    end_parents: [E] joint index of each End Site.
    end_offsets: [E, 3] End Site OFFSETs.
    frame_time: seconds per frame.
    motion: [T, C] channel values, C = sum of the joints' channel counts.
  """

  names: tuple[str, ...]
  parents: tuple[int, ...]
  offsets: np.ndarray
  channels: tuple[tuple[str, ...], ...]
  end_parents: tuple[int, ...]
  end_offsets: np.ndarray
  frame_time: float
  motion: np.ndarray

  @property
  def num_frames(self) -> int:
    return self.motion.shape[0]

  def index(self, names: Sequence[str]) -> np.ndarray:
    """Joint indices of ``names`` (e.g. ``SMPL_JOINT_NAMES``) in this file."""
    where = {n: i for i, n in enumerate(self.names)}
    missing = [n for n in names if n not in where]
    if missing:
      raise KeyError(f"joints not in the BVH file: {missing}")
    return np.asarray([where[n] for n in names])


_CHANNEL_NAMES = {
  f"{ax}{kind}" for ax in "XYZ" for kind in ("position", "rotation")
}


def parse_bvh(source: str | Path) -> BVH:
  """Parses a BVH file (a path, or the text itself if it holds a newline)."""
  if isinstance(source, Path) or "\n" not in str(source):
    label = str(source)
    text = Path(source).read_text()
  else:
    label, text = "<bvh text>", str(source)
  lines = text.splitlines()
  n = 0

  def fail(msg: str) -> BVHFormatError:
    return BVHFormatError(f"{label}:{n}: {msg}")

  def floats(tokens: list[str], count: int, what: str) -> list[float]:
    if len(tokens) != count:
      raise fail(f"{what} needs {count} numbers, got {len(tokens)}")
    try:
      return [float(x) for x in tokens]
    except ValueError:
      raise fail(f"{what} has a non-number: {tokens}") from None

  names, parents, offsets, channels = [], [], [], []
  end_parents, end_offsets = [], []
  stack: list[int | None] = []  # open braces: joint index, None = End Site
  pending: tuple[str, int | None] | None = None  # a header awaiting its '{'
  in_hierarchy = False
  motion_at = None
  for n, raw in enumerate(lines, start=1):
    tokens = raw.split()
    if not tokens:
      continue
    key = tokens[0]
    if not in_hierarchy:
      if key != "HIERARCHY":
        raise fail(f"expected HIERARCHY, got {key!r}")
      in_hierarchy = True
      continue
    if key == "MOTION":
      if stack or pending:
        raise fail("MOTION inside an unclosed joint")
      motion_at = n
      break
    if key in ("ROOT", "JOINT"):
      if (key == "ROOT") != (not stack):
        raise fail(f"{key} at the wrong nesting level")
      if len(tokens) < 2:
        raise fail(f"{key} without a name")
      pending = (" ".join(tokens[1:]), stack[-1] if stack else -1)
      if pending[1] is None:
        raise fail("JOINT inside an End Site")
      continue
    if key == "End":
      if not stack or stack[-1] is None:
        raise fail("End Site outside a joint")
      pending = ("", None)
      continue
    if key == "{":
      if pending is None:
        raise fail("'{' without ROOT / JOINT / End Site")
      name, parent = pending
      pending = None
      if parent is None:  # End Site
        end_parents.append(stack[-1])
        end_offsets.append(None)
        stack.append(None)
      else:
        names.append(name)
        parents.append(parent)
        offsets.append(None)
        channels.append(())
        stack.append(len(names) - 1)
      continue
    if key == "}":
      if not stack:
        raise fail("unbalanced '}'")
      stack.pop()
      continue
    if key == "OFFSET":
      if not stack:
        raise fail("OFFSET outside a joint")
      value = floats(tokens[1:], 3, "OFFSET")
      if stack[-1] is None:
        end_offsets[-1] = value
      else:
        offsets[stack[-1]] = value
      continue
    if key == "CHANNELS":
      if not stack or stack[-1] is None:
        raise fail("CHANNELS outside a joint")
      try:
        count = int(tokens[1])
      except (IndexError, ValueError):
        raise fail("CHANNELS without a count") from None
      chans = tuple(tokens[2:])
      if len(chans) != count or not set(chans) <= _CHANNEL_NAMES:
        raise fail(f"bad CHANNELS line: {raw.strip()!r}")
      channels[stack[-1]] = chans
      continue
    raise fail(f"unexpected {key!r}")
  if motion_at is None:
    raise fail("no MOTION section")
  if not names:
    raise fail("no joints")
  for i, o in enumerate(offsets):
    if o is None:
      raise BVHFormatError(f"{label}: joint {names[i]!r} has no OFFSET")
  if any(o is None for o in end_offsets):
    raise BVHFormatError(f"{label}: an End Site has no OFFSET")

  rest = " ".join(lines[motion_at:]).split()
  try:
    i_frames = rest.index("Frames:")
    num_frames = int(rest[i_frames + 1])
    if rest[i_frames + 2 : i_frames + 4] != ["Frame", "Time:"]:
      raise ValueError
    frame_time = float(rest[i_frames + 4])
    values = np.asarray(rest[i_frames + 5 :], dtype=np.float64)
  except (ValueError, IndexError):
    raise BVHFormatError(
      f"{label}: bad MOTION header (expected 'Frames: N' and "
      "'Frame Time: dt', then numbers)"
    ) from None
  num_channels = sum(len(c) for c in channels)
  if values.size != num_frames * num_channels:
    raise BVHFormatError(
      f"{label}: MOTION has {values.size} numbers, expected {num_frames} "
      f"frames x {num_channels} channels"
    )
  return BVH(
    names=tuple(names),
    parents=tuple(parents),
    offsets=np.asarray(offsets, np.float64).reshape(-1, 3),
    channels=tuple(channels),
    end_parents=tuple(end_parents),
    end_offsets=np.asarray(end_offsets, np.float64).reshape(-1, 3),
    frame_time=frame_time,
    motion=values.reshape(num_frames, num_channels),
  )


def bvh_local_transforms(bvh: BVH) -> tuple[np.ndarray, np.ndarray]:
  """Per-frame local transforms of the joints (file order).

  Returns:
    (rotations [T, J, 3, 3]: product of the rotation channels in listed
    order; translations [T, J, 3]: OFFSET + position channels, file units).
  """
  t = bvh.num_frames
  nj = len(bvh.names)
  rots = np.broadcast_to(np.eye(3), (t, nj, 3, 3)).copy()
  trans = np.broadcast_to(bvh.offsets, (t, nj, 3)).copy()
  col = 0
  for j, chans in enumerate(bvh.channels):
    for ch in chans:
      v = bvh.motion[:, col]  # [T]
      col += 1
      ax = ch[0]
      if ch.endswith("rotation"):
        rots[:, j] = rots[:, j] @ axis_rotation(ax, np.deg2rad(v))
      else:
        trans[:, j, _AXIS[ax]] += v
  return rots, trans


def bvh_positions(bvh: BVH, end_sites: bool = False) -> np.ndarray:
  """World positions by forward kinematics: [T, J, 3] (file units, file
  joint order), or [T, J + E, 3] with the End Sites appended in file order.
  """
  rots, trans = bvh_local_transforms(bvh)
  glob = np.empty_like(rots)
  pos = np.empty_like(trans)
  for j, p in enumerate(bvh.parents):  # parents precede children in a BVH
    if p < 0:
      glob[:, j], pos[:, j] = rots[:, j], trans[:, j]
    else:
      glob[:, j] = glob[:, p] @ rots[:, j]
      pos[:, j] = pos[:, p] + np.einsum("tik,tk->ti", glob[:, p], trans[:, j])
  if not end_sites or not bvh.end_parents:
    return pos
  ep = np.asarray(bvh.end_parents)
  ends = pos[:, ep] + np.einsum("teik,ek->tei", glob[:, ep], bvh.end_offsets)
  return np.concatenate([pos, ends], axis=1)
