"""Check that hybrik-jax computes what mmhuman3d computes, with your weights.

  bash scripts/setup_reference.sh            # once: PyTorch + mmhuman3d venv
  python parity.py CKPT.pth                  # 4 synthetic inputs
  python parity.py CKPT.pth --images DIR_OR_FILES... [--bbox x,y,w,h]

Converts ``CKPT.pth`` (or takes ``--converted DIR``), runs mmhuman3d 0.11.0's
own HybrIK model on it in the reference venv (``.refvenv``, float32 and
float64) and hybrik-jax on the same inputs, and prints one row per output:
the largest difference between the two, the reference's own float32 noise on
these inputs (its float32 run against its float64 run), the tolerance (the
larger of the per-output float32 floor and 10x that noise) and whether it
holds. Exit status 0 when every row holds, 1 otherwise; 2 for a bad input
(missing file, no reference venv). Accepts what mmcv's ``save_checkpoint``
writes (optimizer state inside), bare state_dicts and ``module.``-prefixed
DataParallel files. Flags follow :mod:`hybrik_jax.cli`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from absl import flags

from hybrik_jax import cli


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string(
    "converted",
    None,
    "A folder convert_torch_weights.py wrote from CKPT (default: convert "
    "now, into a temporary folder).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "synthetic",
    4,
    "Number of smooth random images and cameras (without --images).",
    flag_values=fv,
  )
  flags.DEFINE_multi_string(
    "images",
    [],
    "Image files or folders (repeatable), cropped as mmhuman3d's test "
    "pipeline crops them.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "bbox",
    None,
    "Person box x,y,w,h (pixels) for --images (default: the whole image).",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "precision",
    "highest",
    ["default", "high", "highest"],
    "hybrik-jax matmul/convolution precision (highest = float32; what "
    "parity on a GPU/TPU needs).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "smpl",
    None,
    "A plain-numpy SMPL model file to use on both sides instead of the "
    "checkpoint's smpl.* buffers.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "refvenv",
    None,
    "The reference venv (default: .refvenv in this repository).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "threads", 2, "PyTorch threads in the reference run.", flag_values=fv
  )
  flags.DEFINE_integer("seed", 0, "Seed of --synthetic inputs.", flag_values=fv)


def _image_paths(specs):
  from hybrik_jax import errors
  from hybrik_jax.demo import inputs as demo_inputs

  paths = []
  for spec in specs:
    p = Path(spec)
    if p.is_dir():
      paths += demo_inputs.list_images(p)
    elif p.is_file():
      paths.append(p)
    else:
      raise errors.MissingInputError(f"--images {p} does not exist")
  if not paths:
    raise errors.MissingInputError(f"--images {specs}: no image files")
  return paths


def main(argv=None) -> int:
  fv, (checkpoint,) = cli.parse(
    define_flags,
    argv,
    "python parity.py CKPT.pth",
    __doc__,
    num_positional=1,
    xla=True,
  )
  from hybrik_jax import builders, errors
  from hybrik_jax.demo import inputs as demo_inputs
  from hybrik_jax.interop import convert, parity
  from hybrik_jax.train import checkpointing

  ckpt = Path(checkpoint)
  if not ckpt.is_file():
    raise errors.MissingInputError(f"checkpoint {ckpt} does not exist")
  refvenv = Path(fv.refvenv) if fv.refvenv else parity.DEFAULT_REFVENV
  if not (refvenv / "bin" / "python").exists():
    raise parity.ReferenceError(
      f"no reference venv at {refvenv}: build it with "
      "`bash scripts/setup_reference.sh` (or pass --refvenv)"
    )
  t0 = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix="hybrik_jax_parity_") as tmp:
    converted = Path(fv.converted) if fv.converted else Path(tmp) / "conv"
    if fv.converted:
      if not (converted / convert.REPORT_JSON).is_file():
        raise errors.MissingInputError(
          f"--converted {converted}: not a folder convert_torch_weights.py "
          f"wrote (no {convert.REPORT_JSON})"
        )
      report = convert.load_report(converted)
      sha = convert.file_sha256(str(ckpt))
      if report.get("source", {}).get("sha256") != sha:
        print(
          f"warning: {converted} was converted from "
          f"{report.get('source', {}).get('file')!r}, not from {ckpt.name} "
          "(sha256 differs); comparing anyway",
          flush=True,
        )
    else:
      convert.convert_checkpoint(ckpt, converted)
    body_model = None
    if fv.smpl:
      from hybrik_jax import smpl as smpl_lib

      extra = smpl_lib.load_model(converted / convert.SMPL_NPZ)
      body_model = smpl_lib.load_model(
        fv.smpl, extra_regressor=extra.J_regressor_extra
      )
    variables = checkpointing.load_inference_variables(converted, body_model)

    if fv.images:
      box = demo_inputs.parse_bbox(fv.bbox) if fv.bbox else None
      paths = _image_paths(fv.images)
      inputs = parity.image_inputs(paths, box)
      what = f"{len(paths)} image(s)"
    else:
      if fv.synthetic < 1:
        raise cli.UsageError("--synthetic must be at least 1")
      inputs = parity.synthetic_inputs(fv.synthetic, seed=fv.seed)
      what = f"{fv.synthetic} synthetic input(s), seed {fv.seed}"

    jax_out = parity.run_jax(
      variables, inputs, builders.precision(fv.precision)
    )
    smpl = Path(fv.smpl) if fv.smpl else None
    refs = [
      parity.run_reference(ckpt, inputs, dt, refvenv, smpl, fv.threads)
      for dt in ("float32", "float64")
    ]
  rows = parity.compare(jax_out, *refs)
  print(f"\n{ckpt.name}: hybrik-jax vs mmhuman3d 0.11.0 on {what}")
  print(parity.format_table(rows))
  bad = [r.name for r in rows if not r.ok]
  took = time.perf_counter() - t0
  if bad:
    print(f"\nFAILED: {', '.join(bad)} beyond tolerance ({took:.0f} s)")
    return 1
  print(f"\nparity holds on every output ({took:.0f} s)")
  return 0


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
