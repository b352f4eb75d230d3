"""Body-model demo: SMPL forward -> 29-joint skeleton -> HybrIK IK -> mesh.

Runs on the package's synthetic SMPL model (no licensed data needed):

1. samples a few random plausible bodies (``hybrik_jax.smpl.poses``),
2. poses them with ``hybrik_jax.smpl.forward``,
3. builds HybrIK's 29-joint skeleton by forward kinematics (leaves move
   rigidly with their parents) and the true twist angles by swing-twist
   decomposition of the generating rotations,
4. reconstructs the body with ``hybrik_jax.smpl.hybrik_forward`` (eval-mode
   IK) from (a) the skeleton + true twists, (b) the skeleton + zero twists,
   (c) the skeleton with 10 mm Gaussian noise + true twists,
5. prints MPJPE (24 SMPL joints and 17 H36M joints, root-relative, mm) and the
   mean vertex error (mm) of each case, and writes a picture: per body the
   true mesh and the reconstructions (a) and (c), front and side view.

Run: ``python -m hybrik_jax.demo.body_demo --out runs/body_demo``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from absl import flags

from hybrik_jax import cli, render
from hybrik_jax.smpl import numpy_kinematics, poses

PANEL = 256  # pixels per rendered panel


@functools.cache
def jitted_hybrik_forward():
  """``jax.jit(hybrik_forward)`` (``train`` static), built once."""
  import jax

  from hybrik_jax.smpl import hybrik_forward

  return jax.jit(hybrik_forward, static_argnames=("train",))


def _errors(
  pred: dict,
  true_joints: np.ndarray,
  true_h36m: np.ndarray,
  true_vertices: np.ndarray,
) -> dict[str, float]:
  """MPJPE-24, MPJPE-17 (root-relative) and mean vertex error, all in mm."""
  j = np.asarray(pred["joints"], np.float64)  # root-relative already
  j17 = np.asarray(pred["joints_from_verts"], np.float64)
  v = np.asarray(pred["vertices"], np.float64)
  tj = true_joints - true_joints[:, :1]
  t17 = true_h36m - true_h36m[:, :1]
  return {
    "mpjpe24_mm": 1000 * float(np.linalg.norm(j - tj, axis=-1).mean()),
    "mpjpe17_mm": 1000 * float(np.linalg.norm(j17 - t17, axis=-1).mean()),
    "vertex_mm": 1000
    * float(np.linalg.norm(v - true_vertices, axis=-1).mean()),
  }


def _label(img: np.ndarray, text: str) -> np.ndarray:
  img = img.copy()
  cv2.putText(
    img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
  )
  return img


def render_panels(
  meshes: Sequence[np.ndarray],
  faces: np.ndarray,
  colors: np.ndarray,
  labels: Sequence[str],
) -> np.ndarray:
  """One row: each mesh front and side, framed by the first mesh's camera.

  Args:
    meshes: list of [V, 3] vertices in a camera-oriented frame (y down).
    faces: [F, 3].
    colors: [F, 3] face colours.
    labels: one label per mesh.

  Returns:
    [PANEL, 2 * len(meshes) * PANEL, 3] uint8 RGB.
  """
  size = (PANEL, PANEL)
  ref = meshes[0]
  side_ref = render.side_view(ref)
  fitted, focal, princpt = render.fit_camera(ref, size, margin=0.08)
  shift = fitted[0] - ref[0]
  side_shift = (
    render.fit_camera(side_ref, size, margin=0.08)[0][0] - side_ref[0]
  )
  front, side = [], []
  for verts, label in zip(meshes, labels):
    img = render.render_mesh(
      verts + shift, faces, focal, princpt, size, face_colors=colors
    )["image"]
    front.append(_label(img, label))
    sv = render.rotate_about_vertical(verts, 90.0, center=ref.mean(0))
    img = render.render_mesh(
      sv + side_shift, faces, focal, princpt, size, face_colors=colors
    )["image"]
    side.append(_label(img, label + " (side)"))
  return np.concatenate(front + side, axis=1)


def run(
  out_dir,
  num: int = 4,
  seed: int = 0,
  noise_mm: float = 10.0,
  model=None,
  verbose: bool = True,
) -> dict:
  """Runs the demo; returns the metrics and the picture's path.

  Args:
    out_dir: output folder (created); writes ``body_demo.png`` and
      ``metrics.json``.
    num: number of random bodies.
    seed: random seed.
    noise_mm: standard deviation of the skeleton noise of case (c).
    model: SMPL model with H36M regressor (default: the package's synthetic).
    verbose: print the table.
  """
  import jax.numpy as jnp

  from hybrik_jax import assets

  t0 = time.perf_counter()
  if model is None:
    model = assets.load_synthetic_smpl()
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)

  betas = poses.sample_betas(rng, num)  # [N, 10]
  body_pose = poses.sample_body_pose(rng, num)  # [N, 23, 3]
  orient = poses.sample_global_orient(rng, num)  # [N, 3] camera frame
  thetas = np.concatenate([orient[:, None], body_pose], axis=1)
  true = numpy_kinematics.smpl_forward_batched(model, betas, thetas)
  true_vertices = true["vertices"]  # [N, V, 3]
  true_joints = true["joints"]  # [N, 24, 3]
  true_h36m = true["joints_extra"]  # [N, 17, 3]

  rest29 = numpy_kinematics.rest_skeleton29(model, betas)
  rot_mats = numpy_kinematics.axis_angle_to_matrix(thetas)
  phis = numpy_kinematics.swing_twist_phis(rot_mats, rest29)  # [N, 23, 2]
  skeleton = numpy_kinematics.fk_skeleton29(rot_mats, rest29)
  skeleton = skeleton - skeleton[:, :1]  # [N, 29, 3] root-relative, metres
  zero_phis = np.zeros_like(phis)
  zero_phis[..., 0] = 1.0
  noisy = skeleton + rng.normal(0.0, noise_mm / 1000.0, skeleton.shape)
  noisy = noisy - noisy[:, :1]

  cases = {
    "skeleton + true twists": (skeleton, phis),
    "skeleton + zero twists": (skeleton, zero_phis),
    f"skeleton + {noise_mm:g} mm noise + true twists": (noisy, phis),
  }
  # All cases in one batch: one compilation of the IK + SMPL layer.
  names = list(cases)
  skel_all = np.concatenate([cases[n][0] for n in names])  # [3N, 29, 3]
  phis_all = np.concatenate([cases[n][1] for n in names])  # [3N, 23, 2]
  betas_all = np.concatenate([betas] * len(names))  # [3N, 10]
  pred_all = jitted_hybrik_forward()(
    model,
    jnp.asarray(skel_all, jnp.float32),
    jnp.asarray(betas_all, jnp.float32),
    jnp.asarray(phis_all, jnp.float32),
    train=False,
  )
  results, meshes = {}, {}
  for k, name in enumerate(names):
    pred = {
      key: np.asarray(val)[k * num : (k + 1) * num]
      for key, val in pred_all.items()
    }
    results[name] = _errors(pred, true_joints, true_h36m, true_vertices)
    meshes[name] = np.asarray(pred["vertices"], np.float64)

  faces = np.asarray(model.faces)
  colors = render.part_face_colors(np.asarray(model.lbs_weights), faces)
  rows = []
  for i in range(num):
    rows.append(
      render_panels(
        [true_vertices[i], meshes[names[0]][i], meshes[names[2]][i]],
        faces,
        colors,
        ["true", "IK", f"IK, {noise_mm:g} mm noise"],
      )
    )
  picture = np.concatenate(rows, axis=0)
  png = out_dir / "body_demo.png"
  cv2.imwrite(str(png), picture[..., ::-1])
  seconds = time.perf_counter() - t0
  summary = {
    "num_bodies": num,
    "seed": seed,
    "cases": results,
    "picture": str(png),
    "seconds": round(seconds, 2),
  }
  with open(out_dir / "metrics.json", "w") as fh:
    json.dump(summary, fh, indent=2)

  if verbose:
    print(
      f"HybrIK IK on {num} random bodies (synthetic SMPL, eval mode); "
      "errors vs the true body, root-relative, mm"
    )
    width = max(len(n) for n in names)
    print(
      f"{'case':<{width}}  {'MPJPE-24':>9}  {'MPJPE-17':>9}  {'vertices':>9}"
    )
    for name in names:
      r = results[name]
      print(
        f"{name:<{width}}  {r['mpjpe24_mm']:9.3f}  {r['mpjpe17_mm']:9.3f}"
        f"  {r['vertex_mm']:9.3f}"
      )
    print(f"picture: {png}   ({seconds:.1f} s)")
  return summary


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("out", "runs/body_demo", "Output folder.", flag_values=fv)
  flags.DEFINE_integer(
    "num", 4, "Number of bodies.", lower_bound=1, flag_values=fv
  )
  flags.DEFINE_integer("seed", 0, "Random seed.", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
  args, _ = cli.parse(
    define_flags, argv, "python -m hybrik_jax.demo.body_demo", __doc__
  )
  run(args.out, num=args.num, seed=args.seed)
  return 0


if __name__ == "__main__":
  cli.run(main)
