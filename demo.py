"""HybrIK demo: image / folder / video in, mesh overlay + mesh files out.

  # one image, the whole image as the person box:
  python demo.py --checkpoint converted/hybrik --input person.jpg
  # a folder with per-image boxes, a training run's checkpoint:
  python demo.py --checkpoint runs/synthetic --input imgs/ --bbox-file boxes.json
  # a video (one person box for every frame):
  python demo.py --checkpoint runs/synthetic --input clip.mp4 --bbox 40,10,200,460

Writes ``<name>_overlay.png`` (mesh over the image | side view),
``<name>.obj`` (camera-frame metres) and ``<name>.npz`` per image, or
``<name>_overlay.mp4`` + ``<name>.npz`` (per-frame arrays) per video, to
``--out`` (default runs/demo). ``<name>`` is the file stem (``a.jpg`` ->
``a``); inputs sharing a stem keep their extension (``a.jpg`` -> ``a_jpg``,
``a.png`` -> ``a_png``), so every output file is distinct. Files of the
same names already in ``--out`` (an earlier run) are replaced, after one
``warning: replacing N existing file(s)`` line; use a new ``--out`` to keep
them. An output that would replace an input image is refused (error, exit
status 1). No person detector is used. The camera
convention, the crop and the ``--bbox-file`` format are described in
``hybrik_jax/demo/`` (package docstring: a map of its modules). Flags follow
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
    "JSON {name_or_frame: [x,y,w,h]} or text lines 'name x y w h'.",
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
    "batch_size", 8, "Images per jitted call.", flag_values=fv
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
  flags.DEFINE_bool("no_progress", False, "Hide progress bars.", flag_values=fv)
  flags.DEFINE_enum(
    "precision",
    "default",
    ["default", "high", "highest"],
    "Matmul/convolution precision ('highest': true float32 on TPU/GPU).",
    flag_values=fv,
  )
  flags.mark_flags_as_required(["checkpoint", "input"], flag_values=fv)


def main(argv=None) -> int:
  args, _ = cli.parse(define_flags, argv, "python demo.py", __doc__, xla=True)
  logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
  for name in ("absl", "jax", "orbax"):
    logging.getLogger(name).setLevel(logging.ERROR)
  from hybrik_jax import builders
  from hybrik_jax.demo import inputs as demo_inputs
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
    )
  except demo_inputs.DemoError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  seconds = time.perf_counter() - start
  replaced = result["replaced"]
  print(
    f"{result['kind']}: {result['num_images']} "
    f"{'frame' if result['kind'] == 'video' else 'image'}(s) in "
    f"{seconds:.1f} s; wrote {len(result['outputs'])} files to {args.out}"
    + (f" ({replaced} replaced)" if replaced else "")
  )
  for path in result["outputs"][:6]:
    print(f"  {path}")
  if len(result["outputs"]) > 6:
    print(f"  ... ({len(result['outputs']) - 6} more)")
  return 0


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
