"""Check that hybrik-jax computes what the PyTorch code computes, with your
weights: mmhuman3d's HybrIK, or the original authors' camera models.

  bash scripts/setup_reference.sh            # once: PyTorch + mmhuman3d venv
  python parity.py CKPT.pth                  # 4 synthetic inputs
  python parity.py CKPT.pth --images DIR_OR_FILES... [--bbox x,y,w,h]
  python parity.py CKPT.pth --data hybrik_pw3d_test.npz --image-root DIR \
      [--num 4] [--metrics]
  # the authors' HRNet-W48-cam / ResNet-34-cam checkpoints (Jeff-sjtu/HybrIK)
  python parity.py hybrik_hrnet.pth --authors-src HYBRIK_CHECKOUT [--flip-test]
      [--synthetic N | --images DIR_OR_FILES... [--bbox x,y,w,h]]

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

The architecture is read off CKPT's keys (as ``convert_torch_weights.py``
does). The authors' ``HRNetSMPLCam`` / ``Simple3DPoseBaseSMPLCam``
checkpoints (bare, ``module.``-prefixed or ``{'model': state_dict}``) are
compared with the authors' own PyTorch code (``reference/run_authors.py``),
which is not part of this repository: ``--authors-src`` names a checkout of
github.com/Jeff-sjtu/HybrIK (its ``hybrik/`` and ``configs/``). Inputs are
cropped as their demo crops (``--images``) or synthetic; the eval forward
gets the enlarged boxes and the image centre as their demo passes them;
``--flip-test`` (HRNet) is their flip test with the intended one-pixel
shift. The tolerance of each row is the larger of the per-tensor atol of
``tests/test_authors_models.py`` and 3x the reference's own float32 noise.
``--data`` / ``--metrics`` / ``--smpl`` are mmhuman3d's only.
"""

from __future__ import annotations

import concurrent.futures
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
  flags.DEFINE_string(
    "data",
    None,
    "A HumanData test npz: its first --num samples go through both test "
    "pipelines (crops and camera inputs compared bit for bit), then both "
    "models.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "image_root",
    None,
    "Folder the --data image paths are relative to (default: the npz's "
    "folder).",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "dataset_name",
    None,
    ["pw3d", "h36m", "mpi_inf_3dhp"],
    "Protocol of --data when the file has no 'config' entry.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "num", 4, "Samples of --data compared output by output.", flag_values=fv
  )
  flags.DEFINE_bool(
    "metrics",
    False,
    "With --data: evaluate both models on the whole file with their own "
    "evaluation code (mmhuman3d's dataset.evaluate, hybrik-jax's "
    "evaluate.py protocol) and compare MPJPE / PA-MPJPE / PVE (mm; must "
    "agree to 0.01 mm).",
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
  flags.DEFINE_string(
    "authors_src",
    None,
    "A checkout of github.com/Jeff-sjtu/HybrIK (holding hybrik/ and "
    "configs/): the reference of the authors' camera checkpoints "
    "(HRNet-W48-cam, ResNet-34-cam); required for them.",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "flip_test",
    False,
    "The authors' HRNet-W48-cam checkpoints: compare the flip test (their "
    "demo's default; the intended one-pixel heatmap shift).",
    flag_values=fv,
  )


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

  if fv.metrics and not fv.data:
    raise cli.UsageError("--metrics needs --data FILE.npz")
  if fv.data and fv.images:
    raise cli.UsageError("give --data or --images, not both")
  if fv.num < 1:
    raise cli.UsageError("--num must be at least 1")
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
  arch = parity.checkpoint_architecture(ckpt)
  if arch in parity.AUTHORS_ARCHS:
    authors_src = _check_authors_flags(fv, ckpt, arch)
  elif fv.flip_test:
    raise cli.UsageError(
      "--flip-test is for the authors' hrnet_w48_cam checkpoints; "
      f"{ckpt.name} is mmhuman3d's HybrIK (no flip test in its parity)"
    )
  with tempfile.TemporaryDirectory(prefix="hybrik_jax_parity_") as tmp:
    converted = Path(fv.converted) if fv.converted else Path(tmp) / "conv"
    if fv.converted:
      if not (converted / convert.REPORT_JSON).is_file():
        raise errors.MissingInputError(
          f"--converted {converted}: not a folder convert_torch_weights.py "
          f"wrote (no {convert.REPORT_JSON})"
        )
      report = convert.load_report(converted)
      conv_arch = convert.architecture_of(report)
      if arch is not None and conv_arch != arch:
        raise errors.RunMismatchError(
          f"--converted {converted} holds a {conv_arch} model; {ckpt.name} "
          f"is a {arch} checkpoint"
        )
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
    if arch in parity.AUTHORS_ARCHS:
      return _authors_parity(
        fv, ckpt, arch, converted, authors_src, refvenv, t0
      )
    body_model = None
    if fv.smpl:
      from hybrik_jax import smpl as smpl_lib

      extra = smpl_lib.load_model(converted / convert.SMPL_NPZ)
      body_model = smpl_lib.load_model(
        fv.smpl, extra_regressor=extra.J_regressor_extra
      )
    variables = checkpointing.load_inference_variables(converted, body_model)

    smpl = Path(fv.smpl) if fv.smpl else None
    pipeline_rows, metric_table, bad_metrics = [], None, []
    if fv.data:
      data = Path(fv.data)
      if not data.is_file():
        raise errors.MissingInputError(f"--data {data} does not exist")
      image_root = Path(fv.image_root) if fv.image_root else data.parent
      ours, dataset_type = parity.data_inputs(
        str(data), str(image_root), fv.num, fv.dataset_name
      )
      inputs = {k: ours[k] for k in ours if k not in ("bbox", "sample_idx")}
      refs = [
        parity.run_reference_data(
          ckpt,
          str(data),
          str(image_root),
          dataset_type,
          dt,
          num=fv.num,
          refvenv=refvenv,
          smpl=smpl,
          threads=fv.threads,
        )[0]
        for dt in ("float32", "float64")
      ]
      pipeline_rows = parity.compare_pipelines(ours, refs[0])
      n = len(ours["sample_idx"])
      what = f"the first {n} sample(s) of {data.name} ({dataset_type})"
      if fv.metrics:
        names = ("mpjpe", "pa-mpjpe", "pve")
        _, meta = parity.run_reference_data(
          ckpt,
          str(data),
          str(image_root),
          dataset_type,
          "float32",
          num=0,
          metrics=names,
          refvenv=refvenv,
          smpl=smpl,
          threads=fv.threads,
        )
        jax_metrics = parity.jax_metrics(
          variables,
          str(data),
          str(image_root),
          fv.dataset_name,
          names,
          fv.precision,
        )
        metric_table, bad_metrics = parity.format_metrics(
          meta["metrics_mm"], jax_metrics
        )
        metric_table = (
          f"\n{data.name}: {meta['num_samples']} samples, each side's own "
          f"test pipeline, model and evaluation code\n{metric_table}"
        )
    elif fv.images:
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
    if not fv.data:
      refs = [
        parity.run_reference(ckpt, inputs, dt, refvenv, smpl, fv.threads)
        for dt in ("float32", "float64")
      ]
  rows = pipeline_rows + parity.compare(jax_out, *refs)
  print(f"\n{ckpt.name}: hybrik-jax vs mmhuman3d 0.11.0 on {what}")
  print(parity.format_table(rows))
  if metric_table:
    print(metric_table)
  bad = [r.name for r in rows if not r.ok] + bad_metrics
  took = time.perf_counter() - t0
  if bad:
    print(f"\nFAILED: {', '.join(bad)} beyond tolerance ({took:.0f} s)")
    return 1
  print(f"\nparity holds on every output ({took:.0f} s)")
  return 0


def _check_authors_flags(fv, ckpt: Path, arch: str) -> Path:
  """The command line of an authors' checkpoint; returns --authors-src."""
  from hybrik_jax import errors

  for flag, given in (
    ("--data", fv.data),
    ("--metrics", fv.metrics),
    ("--smpl", fv.smpl),
  ):
    if given:
      raise cli.UsageError(
        f"{flag} is for mmhuman3d's checkpoints; {ckpt.name} is the authors' "
        f"{arch} (give --synthetic N or --images)"
      )
  if fv.flip_test and arch != "hrnet_w48_cam":
    raise cli.UsageError(
      f"--flip-test is defined for the authors' hrnet_w48_cam only, not "
      f"{arch} (their ResNet-34 flip test does not run)"
    )
  if not fv.authors_src:
    raise cli.UsageError(
      f"{ckpt.name} is the authors' {arch} checkpoint, whose reference is "
      "their own PyTorch code: pass --authors-src DIR, a checkout of "
      "github.com/Jeff-sjtu/HybrIK (holding hybrik/ and configs/)"
    )
  src = Path(fv.authors_src)
  need = (src / "hybrik" / "models" / "builder.py", src / "configs")
  absent = [str(p.relative_to(src)) for p in need if not p.exists()]
  if absent:
    raise errors.MissingInputError(
      f"--authors-src {src}: not a checkout of Jeff-sjtu/HybrIK (missing "
      + ", ".join(absent)
      + ")"
    )
  return src.resolve()


def _authors_parity(fv, ckpt, arch, converted, authors_src, refvenv, t0):
  """hybrik-jax vs the authors' own model (the module docstring)."""
  from hybrik_jax import builders
  from hybrik_jax.demo import inputs as demo_inputs
  from hybrik_jax.interop import parity
  from hybrik_jax.train import checkpointing

  variables = checkpointing.load_inference_variables(converted)
  if fv.images:
    box = demo_inputs.parse_bbox(fv.bbox) if fv.bbox else None
    paths = _image_paths(fv.images)
    inputs = parity.authors_image_inputs(paths, box)
    what = f"{len(paths)} image(s)"
  else:
    if fv.synthetic < 1:
      raise cli.UsageError("--synthetic must be at least 1")
    inputs = parity.authors_synthetic_inputs(fv.synthetic, seed=fv.seed)
    what = f"{fv.synthetic} synthetic input(s), seed {fv.seed}"
  what += ", boxes + image centre" + (", flip test" if fv.flip_test else "")
  # The reference runs in its own process while XLA compiles and runs here
  # (the compilation is mostly single-threaded): the results do not depend
  # on it, the wall time does.
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    reference = pool.submit(
      parity.run_reference_authors,
      ckpt,
      arch,
      inputs,
      authors_src,
      fv.flip_test,
      refvenv,
      fv.threads,
    )
    jax_out = parity.run_jax_authors(
      variables, inputs, arch, fv.flip_test, builders.precision(fv.precision)
    )
    ref32, ref64, meta = reference.result()
  rows = parity.compare(
    jax_out,
    ref32,
    ref64,
    floors=parity.AUTHORS_FLOORS[arch],
    noise_factor=parity.AUTHORS_NOISE_FACTOR,
    reference="the authors' model",
  )
  print(
    f"\n{ckpt.name}: hybrik-jax vs the authors' HybrIK ({arch}, their "
    f"PyTorch code from {authors_src}) on {what}"
  )
  print(parity.format_table(rows))
  calls = meta.get("update_scale_calls", {}).get("float32")
  if calls:
    print(f"update_scale (float32 reference): {', '.join(calls)}")
  bad = [r.name for r in rows if not r.ok]
  took = time.perf_counter() - t0
  if bad:
    print(f"\nFAILED: {', '.join(bad)} beyond tolerance ({took:.0f} s)")
    return 1
  print(f"\nparity holds on every output ({took:.0f} s)")
  return 0


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
