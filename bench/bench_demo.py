"""Video-demo throughput: frames/s of demo.py on a 720p multi-person video.

Usage:
  .venv/bin/python bench/bench_demo.py [--people 1,4] [--frames 16]
      [--size 1280x720] [--image-size 256] [--batch-size 8] [--smooth none]

For each person count, renders a synthetic walking video
(:mod:`hybrik_jax.demo.synthetic_video`) and runs the whole video demo on it
(:func:`hybrik_jax.demo.run.run`: threaded decoding, tracking, one predictor
call per chunk of frames, placement, overlay rendering and writing, npz per
track) with the ground-truth boxes as per-frame detections (a multi-person
``--bbox-file``): no detector weights ship, so the detector's own time is
not included (an exported YOLOX-S / YOLOv8n on OpenCV's dnn adds its
per-frame cost). The network is the full HybrIK (ResNet-34) at
``--image-size`` (256: the converted checkpoint's) with random weights,
which cost the same as trained ones. A 2-frame warm-up run compiles first,
so the table is steady-state. Prints frames/s and the seconds per stage
(people = boxes + tracking, predict = network + IK + placement, overlay =
mesh rendering, write = video + npz).
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import flags

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hybrik_jax import cli  # noqa: E402


def cpu_model() -> str:
  """lscpu's model name (platform.processor() as a fallback)."""
  try:
    out = subprocess.run(
      ["lscpu"], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines():
      if line.startswith("Model name:"):
        return line.split(":", 1)[1].strip()
  except (OSError, subprocess.CalledProcessError):
    pass
  return platform.processor() or "unknown CPU"


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list(
    "people", ["1", "4"], "Person counts (1..4).", flag_values=fv
  )
  flags.DEFINE_integer("frames", 16, "Frames per video.", flag_values=fv)
  flags.DEFINE_string("size", "1280x720", "Video size WxH.", flag_values=fv)
  flags.DEFINE_integer("image_size", 256, "Network input size.", flag_values=fv)
  flags.DEFINE_integer(
    "batch_size", 8, "Crops per jitted call.", flag_values=fv
  )
  flags.DEFINE_enum(
    "smooth",
    "none",
    ["none", "oneeuro", "gaus1d", "savgol"],
    "--smooth of the timed runs.",
    flag_values=fv,
  )


def main(argv=None) -> None:
  args, _ = cli.parse(
    define_flags, argv, "python bench/bench_demo.py", __doc__, xla=True
  )
  import jax
  from helpers import load_synthetic_body, random_variables

  from hybrik_jax.demo import run as demo_run
  from hybrik_jax.demo import synthetic_video

  try:
    w, h = (int(v) for v in args.size.lower().split("x"))
  except ValueError:
    raise cli.UsageError(f"--size must be WxH, got {args.size!r}") from None
  body = load_synthetic_body()
  variables = random_variables(body, net_size=args.image_size)
  print(
    f"CPU: {cpu_model()}; jax {jax.__version__} ({jax.default_backend()}), "
    f"{w}x{h}, network input {args.image_size}, batch {args.batch_size}, "
    f"--smooth {args.smooth}"
  )
  header = (
    f"{'people':>6}{'frames':>7}{'total s':>9}{'frames/s':>10}"
    f"{'people s':>10}{'predict s':>11}{'overlay s':>11}{'write s':>9}"
    f"{'crops/s':>9}"
  )
  print(header)
  print("-" * len(header))
  with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    ckpt = tmp / "ckpt"  # no config.json: --image-size is used as given
    ckpt.mkdir()

    def demo(clip, boxes, out, smooth):
      return demo_run.run(
        ckpt,
        clip,
        out,
        bbox_file=boxes,
        image_size=args.image_size,
        batch_size=args.batch_size,
        variables=variables,
        progress=False,
        smooth=smooth,
      )

    for people in (int(p) for p in args.people):
      clip = tmp / f"walk{people}.mp4"
      gt = synthetic_video.make_video(
        clip, people, args.frames, (w, h), model=body
      )
      boxes = synthetic_video.write_bbox_file(
        tmp / f"walk{people}.json", gt["boxes_xyxy"], gt["visible"]
      )
      warm = tmp / f"warm{people}.mp4"
      synthetic_video.write_video(warm, gt["frames_bgr"][:2], 10.0)
      demo(warm, boxes, tmp / "warm_out", args.smooth)  # compile
      start = time.perf_counter()
      res = demo(clip, boxes, tmp / f"out{people}", args.smooth)
      total = time.perf_counter() - start
      sec = res["seconds"]
      crops = sum(res["tracks"].values())
      print(
        f"{people:>6}{res['num_images']:>7}{total:>9.2f}"
        f"{res['num_images'] / total:>10.2f}{sec.get('people', 0):>10.2f}"
        f"{sec.get('predict', 0):>11.2f}{sec.get('overlay', 0):>11.2f}"
        f"{sec.get('write', 0):>9.2f}{crops / sec['predict']:>9.2f}",
        flush=True,
      )


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
