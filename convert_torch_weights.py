#!/usr/bin/env python
"""Converts a PyTorch HybrIK checkpoint for hybrik-jax (no torch needed).

Usage:
  python convert_torch_weights.py resnet34_hybrik_mixed-a61b3c9c_20220211.pth \
      weights/hybrik_resnet34
  python convert_torch_weights.py --torchvision resnet34-b627a593.pth \
      weights/resnet34_imagenet

The output folder holds ``variables/`` (orbax checkpoint), ``report.json`` and,
for HybrIK checkpoints, ``smpl_neutral.npz`` (the SMPL model carried by the
checkpoint). Recognises mmhuman3d's ``resnet34_hybrik_mixed`` and the
original authors' HRNet-W48 / ResNet-34 camera models from the keys and
records which in ``report.json`` (``architecture``). Exits with status 2 and
a one-line ``error: ...`` on bad input or a bad command line (see
:mod:`hybrik_jax.cli`).
"""

from __future__ import annotations

import sys

from absl import flags

from hybrik_jax import cli


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace OUT_DIR if it holds a previous conversion (never a folder of "
    "other files).",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "torchvision",
    False,
    "The input is torchvision's ImageNet ResNet-34 "
    "state_dict: convert it as backbone initialisation.",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "verbose", False, "Print full error messages.", flag_values=fv
  )


def _one_line(message: str) -> str:
  lines = [l.strip() for l in str(message).strip().splitlines() if l.strip()]
  if not lines:
    return "unknown error"
  text, rest = lines[0], lines[1:]
  if text.endswith(":") and rest:  # "N problem(s) ...:" + first problem
    text, rest = f"{text} {rest[0]}", rest[1:]
  if rest:
    text += f" (+{len(rest)} more; --verbose lists them all)"
  return text


def main(argv=None) -> int:
  fv, (checkpoint, out_dir) = cli.parse(
    define_flags,
    argv,
    "python convert_torch_weights.py CKPT.pth OUT_DIR",
    __doc__,
    num_positional=2,
  )
  # Imported here so that --help is instant.
  from hybrik_jax import safe_pickle
  from hybrik_jax.interop import convert, torch_format

  errors = (
    convert.ConversionError,
    torch_format.CheckpointFormatError,
    safe_pickle.UnsafePickleError,
    OSError,
  )
  try:
    from hybrik_jax.interop import weight_mapping

    errors += (weight_mapping.WeightMappingError,)
  except ImportError:
    pass
  try:
    if fv.torchvision:
      report = convert.convert_torchvision_resnet34(
        checkpoint, out_dir, overwrite=fv.overwrite
      )
    else:
      report = convert.convert_checkpoint(
        checkpoint, out_dir, overwrite=fv.overwrite
      )
  except errors as e:
    message = str(e) if fv.verbose else _one_line(e)
    if isinstance(e, OSError) and e.filename and str(e.filename) not in message:
      message = f"{e.filename}: {message}"
    print(f"error: {message}", file=sys.stderr)
    return 2

  tensors = report["tensors"]
  variables = report["variables"]
  print(
    f"converted {report['source']['file']} "
    f"(sha256 {report['source']['sha256'][:12]}) -> {out_dir}"
  )
  if "architecture" in report:
    print(f"  architecture: {report['architecture']}")
  print(
    f"  tensors: {tensors['total']} total, {tensors['mapped']} mapped, "
    f"{tensors['ignored']} ignored"
  )
  print(
    f"  variables: {variables['arrays']} arrays, "
    f"{variables['params']:,} trainable parameters, "
    f"{variables['scalars']:,} values in all"
  )
  meta = report.get("meta") or {}
  if meta:
    print(
      "  meta: "
      + ", ".join(f"{k}={v}" for k, v in sorted(meta.items()) if k != "time")
    )
  smpl = report.get("smpl_neutral")
  if smpl:
    print(
      f"  SMPL: {smpl['file']} ({smpl['num_vertices']} vertices, "
      f"{smpl['num_faces']} faces)"
    )
  elif not fv.torchvision:
    print("  SMPL: no smpl.* buffers in the checkpoint (none written)")
  return 0


if __name__ == "__main__":
  cli.run(main)
