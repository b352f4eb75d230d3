"""HybrIK demo: image / folder / video in, mesh overlay + mesh files out.

  # one image, the whole image as the person box:
  python demo.py --checkpoint converted/hybrik --input person.jpg
  # a folder with per-image boxes, a training run's checkpoint:
  python demo.py --checkpoint runs/synthetic --input imgs/ --bbox-file boxes.json
  # a video (one person box for every frame):
  python demo.py --checkpoint runs/synthetic --input clip.mp4 --bbox 40,10,200,460
  # a video, everyone a YOLOX / YOLOv8 ONNX detector finds, tracked,
  # smoothed, with BVH and res.pk exports per person:
  python demo.py --checkpoint converted/hybrik --input clip.mp4 \\
      --detector yolox_s.onnx --smooth savgol --save-bvh --save-pk

Writes ``<name>_overlay.png`` (mesh over the image | side view),
``<name>.obj`` (camera-frame metres) and ``<name>.npz`` per image, or
``<name>_overlay.mp4`` + ``<name>.npz`` (per-frame arrays) per video, to
``--out`` (default runs/demo). ``<name>`` is the file stem (``a.jpg`` ->
``a``); inputs sharing a stem keep their extension (``a.jpg`` -> ``a_jpg``,
``a.png`` -> ``a_png``), so every output file is distinct. Files of the
same names already in ``--out`` (an earlier run) are replaced, after one
``warning: replacing N existing file(s)`` line; use a new ``--out`` to keep
them. An output that would replace an input image is refused (error, exit
status 2).

People: ``--bbox`` / ``--bbox-file`` boxes win (``--detector`` is then
ignored, with a warning); else ``--detector`` finds everyone (no weights
ship: export a YOLOX or YOLOv8 ONNX file, see
``hybrik_jax/demo/detector.py``); else the whole image is one person. With
a detector or a box file listing several boxes per key, every person is
drawn in its own colour, an image's npz arrays get a person axis, and a
video's people are tracked (SORT): ``<name>_track<id>.npz`` per person
(frames where it was seen: ``frames``), and with ``--save-bvh`` /
``--save-pk`` ``<name>_track<id>.bvh`` / ``.pk`` (single person:
``<name>.bvh`` / ``.pk``). ``--smooth`` filters each track's poses,
vertices and translation over time. The camera convention, the crop, the
``--bbox-file`` format and the video outputs are described in
``hybrik_jax/demo/`` (package docstring: a map of its modules).

The authors' camera models (a conversion of their HRNet-W48 / ResNet-34
"with predicted camera" checkpoints) place every person with the network's
own camera: ``transl`` in the npz, focal 1000 px per 256-px crop;
``--focal``, ``--person-height`` and ``--placement`` do not apply, and
``--flip-test`` turns on the HRNet model's flip test. Flags follow
:mod:`hybrik_jax.cli` (``--bbox-file`` == ``--bbox_file``).
"""

from __future__ import annotations

import logging
import sys
import time

from absl import flags

from hybrik_jax import cli


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string(
    "checkpoint",
    None,
    "Converted checkpoint folder, training run directory or step folder.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "input",
    None,
    "Image file, folder of images, or video (.mp4/.avi).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "bbox",
    None,
    "Person box X,Y,W,H in pixels (default: the whole image).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "bbox_file",
    None,
    "JSON {name_or_frame: [x,y,w,h] or [[x,y,w,h], ...]} or text lines "
    "'name x y w h' (a name on several lines: several people).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "detector",
    None,
    "Person detector: a YOLOX or YOLOv8 ONNX file (not shipped; see "
    "hybrik_jax/demo/detector.py). Ignored when --bbox / --bbox-file is "
    "given.",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "detector_layout",
    "auto",
    ["auto", "yolox", "yolov8"],
    "The detector's output layout ('auto': from its output shape).",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "det_score",
    0.5,
    "Keep detected people scoring above this (0..1).",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "det_nms",
    0.45,
    "IoU above which two detected people count as one (0..1).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "person_class",
    0,
    "The detector's person class index (0 in COCO).",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "smooth",
    "none",
    ["none", "oneeuro", "gaus1d", "savgol"],
    "Temporal smoothing of each video track's poses, vertices and "
    "translation (mmhuman3d's filters and defaults).",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "save_bvh",
    False,
    "Video: write a BVH animation per track (median shape, Y-up, metres).",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "bvh_order",
    "ZYX",
    ["ZYX", "XYZ", "XZY", "YXZ", "YZX", "ZXY"],
    "Euler channel order of the BVH rotations.",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "save_pk",
    False,
    "Video: write a res.pk per track (the original HybrIK demo's layout).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "out",
    "runs/demo",
    "Output folder (created). Same-named files of an earlier run are "
    "replaced, with a warning saying how many.",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "focal", None, "Focal length in pixels (default max(H, W)).", flag_values=fv
  )
  flags.DEFINE_integer(
    "image_size",
    None,
    "Network input size (default: the checkpoint's "
    "training size, 256 for converted checkpoints).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "batch_size",
    8,
    "People (crops) per jitted call; a video's frames per predictor call.",
    flag_values=fv,
  )
  flags.DEFINE_float(
    "person_height",
    1.7,
    "Metres spanned by the longer box side, for the root depth prior.",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "placement",
    "fit",
    ["fit", "bbox"],
    "Pelvis position: 2D reprojection fit, or the box depth prior.",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "flip_test",
    False,
    "The authors' flip test (HRNet-W48 camera checkpoints only; their "
    "demo's default).",
    flag_values=fv,
  )
  flags.DEFINE_bool("no_progress", False, "Hide progress bars.", flag_values=fv)
  flags.DEFINE_enum(
    "precision",
    "default",
    ["default", "high", "highest"],
    "Matmul/convolution precision ('highest': true float32 on TPU/GPU).",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "dtype",
    "float32",
    ["float32", "bfloat16"],
    "The network's compute dtype. bfloat16 is opt-in (CPUs with "
    "AVX512-BF16 / AMX, GPU, TPU); its error against float32 is in the "
    "README.",
    flag_values=fv,
  )
  flags.mark_flags_as_required(["checkpoint", "input"], flag_values=fv)


def main(argv=None) -> int:
  args, _ = cli.parse(define_flags, argv, "python demo.py", __doc__, xla=True)
  logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
  for name in ("absl", "jax", "orbax"):
    logging.getLogger(name).setLevel(logging.ERROR)
  from hybrik_jax import builders, errors
  from hybrik_jax.demo import run as demo_run

  start = time.perf_counter()
  try:
    result = demo_run.run(
      args.checkpoint,
      args.input,
      out_dir=args.out,
      bbox=args.bbox,
      bbox_file=args.bbox_file,
      focal=args.focal,
      image_size=args.image_size,
      batch_size=args.batch_size,
      person_height_m=args.person_height,
      placement=args.placement,
      progress=not args.no_progress,
      precision=builders.precision(args.precision),
      detector=args.detector,
      detector_layout=args.detector_layout,
      det_score=args.det_score,
      det_nms=args.det_nms,
      person_class=args.person_class,
      smooth=args.smooth,
      save_bvh=args.save_bvh,
      bvh_order=args.bvh_order,
      save_pk=args.save_pk,
      flip_test=args.flip_test,
      dtype=args.dtype,
    )
  except errors.InputError as e:
    print(f"error: {cli.one_line(e)}", file=sys.stderr)
    return 2
  seconds = time.perf_counter() - start
  replaced = result["replaced"]
  print(
    f"{result['kind']}: {result['num_images']} "
    f"{'frame' if result['kind'] == 'video' else 'image'}(s) in "
    f"{seconds:.1f} s; wrote {len(result['outputs'])} files to {args.out}"
    + (f" ({replaced} replaced)" if replaced else "")
  )
  if result.get("tracks"):
    tracks = result["tracks"]
    print(
      f"  {len(tracks)} track(s) (id: frames): "
      + ", ".join(f"{t}: {n}" for t, n in sorted(tracks.items()))
    )
  for path in result["outputs"][:6]:
    print(f"  {path}")
  if len(result["outputs"]) > 6:
    print(f"  ... ({len(result['outputs']) - 6} more)")
  return 0


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
