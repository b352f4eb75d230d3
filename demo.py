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
``--out`` (default runs/demo). No person detector is used. The camera
convention, the crop and the ``--bbox-file`` format are described in
``hybrik_jax/demo_lib.py``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python demo.py",
      description="HybrIK demo: mesh overlay of one person per image/frame.")
  p.add_argument("--checkpoint", required=True,
                 help="converted checkpoint folder, training run directory "
                      "or step folder")
  p.add_argument("--input", required=True,
                 help="image file, folder of images, or video (.mp4/.avi)")
  p.add_argument("--bbox", default=None, metavar="X,Y,W,H",
                 help="person box in pixels (default: the whole image)")
  p.add_argument("--bbox-file", default=None,
                 help="JSON {name_or_frame: [x,y,w,h]} or text lines "
                      "'name x y w h'")
  p.add_argument("--out", default="runs/demo", help="output folder")
  p.add_argument("--focal", type=float, default=None,
                 help="focal length in pixels (default max(H, W))")
  p.add_argument("--image-size", type=int, default=None,
                 help="network input size (default: the checkpoint's "
                      "training size, 256 for converted checkpoints)")
  p.add_argument("--batch-size", type=int, default=8,
                 help="images per jitted call (default 8)")
  p.add_argument("--person-height", type=float, default=1.7,
                 help="metres spanned by the longer box side, for the root "
                      "depth prior (default 1.7)")
  p.add_argument("--placement", choices=("fit", "bbox"), default="fit",
                 help="pelvis position: 2D reprojection fit (default) or "
                      "the box depth prior")
  p.add_argument("--no-progress", action="store_true",
                 help="hide progress bars")
  return p


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
  for name in ("absl", "jax", "orbax"):
    logging.getLogger(name).setLevel(logging.ERROR)
  from hybrik_jax.demo import run as demo_lib  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  try:
    result = demo_lib.run(
        args.checkpoint, args.input, out_dir=args.out, bbox=args.bbox,
        bbox_file=args.bbox_file, focal=args.focal,
        image_size=args.image_size, batch_size=args.batch_size,
        person_height_m=args.person_height, placement=args.placement,
        progress=not args.no_progress)
  except demo_lib.DemoError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  seconds = time.perf_counter() - start
  print(f"{result['kind']}: {result['num_images']} "
        f"{'frame' if result['kind'] == 'video' else 'image'}(s) in "
        f"{seconds:.1f} s; wrote {len(result['outputs'])} files to {args.out}")
  for path in result["outputs"][:6]:
    print(f"  {path}")
  if len(result["outputs"]) > 6:
    print(f"  ... ({len(result['outputs']) - 6} more)")
  return 0


if __name__ == "__main__":
  from hybrik_jax import host_memory  # pylint: disable=g-import-not-at-top
  host_memory.reexec_with_huge_pages()  # see hybrik_jax/host_memory.py
  sys.exit(main())
