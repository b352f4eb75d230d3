"""The authors' HybrIK camera models (Jeff-sjtu/HybrIK, PyTorch, CPU) as a
command: the reference side of ``parity.py`` for their checkpoints. Talks to
its caller only through files.

Runs in the reference venv (``scripts/setup_reference.sh`` builds
``.refvenv``), never in the project's torch-free venv, with a checkout of
the authors' code that is NOT part of this repository (``--authors-src``,
holding ``hybrik/`` and ``configs/``)::

  .refvenv/bin/python reference/run_authors.py model --checkpoint CKPT.pth \\
      --authors-src DIR --inputs IN.npz --out OUT.npz \\
      --arch hrnet_w48_cam|resnet34_cam [--dtype float32 [float64]] \\
      [--flip-test] [--threads N]
  .refvenv/bin/python reference/run_authors.py save --arch ARCH \\
      --authors-src DIR --state STATE.npz --out CKPT.pth \\
      [--format bare|module|model_dict]

Exit status 0 on success (one JSON summary line on stdout), 1 on bad input
(a one-line ``run_authors: error: ...`` on stderr), 2 on a bad command line.

``model``
  Reads the checkpoint with ``torch.load(..., weights_only=True)`` (a bare
  state_dict, the authors' ``{'model': state_dict}``, or either with
  DataParallel ``module.`` prefixes), builds the authors' model as their
  ``builder.build_sppe(cfg.MODEL)`` does (``authors_model.py``) with the
  ``model_files/`` written from the checkpoint's own ``smpl.*`` buffers and
  ``init_shape``, loads the whole state_dict strictly, and runs the eval
  forward of ``authors_model.forward`` once per ``--dtype`` (float64: the
  same code in float64, to measure the reference's own float32 noise).

  IN.npz: ``img`` [N, 3, 256, 256] the network input (normalised RGB,
  NCHW); optional ``bboxes`` [N, 4] (x1, y1, x2, y2 px) with
  ``img_center`` [N, 2] (px), passed to the forward as their demo passes
  them. ``--flip-test`` (HRNet only): ``flip_test=True`` with the intended
  flip shift (``authors_model.intended_flip_heatmap``).

  OUT.npz: ``<dtype>/<key>`` for every output the model returns
  (``authors_model.OUT_KEYS``) and the intermediates of the unflipped pass
  (``backbone_features``, ``heatmap_logits``, ResNet ``deconv_features``;
  NCHW), in the run's dtype; ``meta`` (JSON: architecture, versions,
  checkpoint kind, update_scale calls, timings).

``save``
  Builds the authors' model with the synthetic SMPL of tests/fixtures,
  loads STATE.npz (key -> array; keys it lacks, e.g. a recipe's ``smpl.*``,
  keep the model's values) and writes the model's whole ``state_dict()``
  with the real ``torch.save``: ``bare`` (the state_dict), ``module``
  (DataParallel ``module.`` prefixes) or ``model_dict`` (``{'model':
  state_dict}``, what the authors' demo unwraps).
"""

from __future__ import annotations

import argparse
import collections
import json
import pickle
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import authors_model  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}
IMG_SIZE = 256


class RunError(Exception):
  """Bad input: reported as one line, exit status 1."""


def read_checkpoint(path: Path) -> tuple[collections.OrderedDict, str]:
  """(state_dict without ``module.``, kind) of an authors' checkpoint."""
  if not path.is_file():
    raise RunError(f"checkpoint not found: {path}")
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    raise RunError(
      f"{path}: not loadable with weights_only=True "
      f"({str(e).strip().splitlines()[0]})"
    ) from e
  except Exception as e:
    raise RunError(f"{path}: not a torch checkpoint: {e}") from e
  kind = "state_dict"
  if type(obj) is dict and isinstance(obj.get("model"), Mapping):
    obj, kind = obj["model"], "model_dict"  # their demo's unwrapping
  if not isinstance(obj, Mapping) or not obj:
    raise RunError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
  bad = [str(k) for k, v in obj.items() if not torch.is_tensor(v)]
  if bad:
    raise RunError(f"{path}: non-tensor entries {bad[:5]}")
  if all(str(k).startswith("module.") for k in obj):
    obj = {k[len("module.") :]: v for k, v in obj.items()}
    kind += "+module"
  return collections.OrderedDict(obj), kind


def read_inputs(path: Path, dtype) -> dict:
  try:
    npz = np.load(path, allow_pickle=False)
  except Exception as e:
    raise RunError(f"{path}: not an npz file: {e}") from e
  with npz:
    if "img" not in npz.files:
      raise RunError(f"{path}: no 'img' (has {npz.files})")
    arrays = {k: np.ascontiguousarray(npz[k], dtype) for k in npz.files}
  img = arrays["img"]
  if img.ndim != 4 or img.shape[1:] != (3, IMG_SIZE, IMG_SIZE) or not len(img):
    raise RunError(f"{path}: img {list(img.shape)}, want [N, 3, 256, 256]")
  n = img.shape[0]
  if ("bboxes" in arrays) != ("img_center" in arrays):
    raise RunError(f"{path}: bboxes and img_center go together")
  for k, tail in (("bboxes", (4,)), ("img_center", (2,))):
    if k in arrays and arrays[k].shape != (n, *tail):
      raise RunError(
        f"{path}: {k} {list(arrays[k].shape)}, want [{n}, {tail[0]}]"
      )
  return arrays


def _build(args, arch: str, files) -> object:
  with tempfile.TemporaryDirectory(prefix="run_authors_") as tmp:
    work = Path(tmp)
    authors_model.prepare_workdir(args.authors_src, work, files)
    return authors_model.build_model(args.authors_src, work, arch)


def cmd_model(args) -> dict:
  t0 = time.perf_counter()
  state, kind = read_checkpoint(args.checkpoint)
  arch = args.arch
  if args.flip_test and arch != "hrnet_w48_cam":
    raise RunError(f"--flip-test is defined for hrnet_w48_cam, not {arch}")
  try:
    files = authors_model.model_files_from_state(state)
  except KeyError as e:
    raise RunError(str(e.args[0])) from e
  model = _build(args, arch, files)
  try:
    authors_model.load_state(model, state, strict_keys=True)
  except RuntimeError as e:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    raise RunError(
      f"checkpoint does not match the authors' {arch}: "
      + " ".join(lines)[:2000]
    ) from e
  t_built = time.perf_counter()
  inputs = read_inputs(args.inputs, np.float64)
  arrays, calls, seconds = {}, {}, {}
  for name in args.dtype:
    t = time.perf_counter()
    res = authors_model.forward(
      model,
      arch,
      inputs["img"],
      DTYPES[name],
      bboxes=inputs.get("bboxes"),
      img_center=inputs.get("img_center"),
      flip=args.flip_test,
    )
    calls[name] = res.pop("update_scale_calls")
    np_dtype = np.float64 if name == "float64" else np.float32
    for k, v in res.items():
      arrays[f"{name}/{k}"] = np.asarray(v, np_dtype)
    seconds[name] = round(time.perf_counter() - t, 3)
  meta = {
    "tool": "reference/run_authors.py model",
    "architecture": arch,
    "checkpoint": str(args.checkpoint),
    "checkpoint_kind": kind,
    "n_keys": len(state),
    "authors_src": str(args.authors_src),
    "torch": torch.__version__,
    "numpy": np.__version__,
    "threads": torch.get_num_threads(),
    "flip_test": bool(args.flip_test),
    "boxes": "bboxes" in inputs,
    "update_scale_calls": calls,
    "seconds_build": round(t_built - t0, 3),
    "seconds_forward": seconds,
  }
  args.out.parent.mkdir(parents=True, exist_ok=True)
  np.savez(args.out, **arrays, meta=np.array(json.dumps(meta)))
  return {"out": str(args.out), "architecture": arch, **meta["seconds_forward"]}


def cmd_save(args) -> dict:
  try:
    with np.load(args.state, allow_pickle=False) as z:
      state = {k: z[k] for k in z.files}
  except Exception as e:
    raise RunError(f"{args.state}: not an npz of arrays: {e}") from e
  model = _build(args, args.arch, authors_model.fixture_model_files())
  try:
    authors_model.load_state(model, state, strict_keys=False)
  except RuntimeError as e:
    raise RunError(f"{args.state}: {str(e).splitlines()[0]}") from e
  sd = model.state_dict()
  if args.format == "module":
    sd = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
  obj = {"model": sd} if args.format == "model_dict" else sd
  args.out.parent.mkdir(parents=True, exist_ok=True)
  torch.save(obj, args.out)
  return {"out": str(args.out), "format": args.format, "n_keys": len(sd)}


def parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(
    prog="run_authors.py",
    description="the authors' HybrIK camera models on CPU (parity reference)",
  )
  sub = ap.add_subparsers(dest="command", required=True)
  m = sub.add_parser("model", help="run the eval-mode forward")
  m.add_argument("--checkpoint", type=Path, required=True)
  m.add_argument("--arch", choices=list(authors_model.CONFIGS), required=True)
  m.add_argument("--authors-src", dest="authors_src", type=Path, required=True)
  m.add_argument("--inputs", type=Path, required=True)
  m.add_argument("--out", type=Path, required=True)
  m.add_argument(
    "--dtype", nargs="+", choices=list(DTYPES), default=["float32"]
  )
  m.add_argument("--flip-test", dest="flip_test", action="store_true")
  m.add_argument("--threads", type=int, default=2)
  s = sub.add_parser("save", help="write a state npz as the model's .pth")
  s.add_argument("--arch", choices=list(authors_model.CONFIGS), required=True)
  s.add_argument("--authors-src", dest="authors_src", type=Path, required=True)
  s.add_argument("--state", type=Path, required=True)
  s.add_argument("--out", type=Path, required=True)
  s.add_argument(
    "--format", choices=["bare", "module", "model_dict"], default="bare"
  )
  return ap


def main(argv: list[str] | None = None) -> int:
  args = parser().parse_args(argv)
  if getattr(args, "threads", 1) < 1:
    parser().error("--threads must be >= 1")
  try:
    args.authors_src = authors_model.use_authors_src(args.authors_src)
    authors_model.install_torchvision_models_stub()
    torch.set_num_threads(getattr(args, "threads", 2))
    command = {"model": cmd_model, "save": cmd_save}
    summary = command[args.command](args)
  except (RunError, authors_model.AuthorsSourceError) as e:
    print(f"run_authors: error: {e}", file=sys.stderr)
    return 1
  print(json.dumps(summary))
  return 0


if __name__ == "__main__":
  sys.exit(main())
