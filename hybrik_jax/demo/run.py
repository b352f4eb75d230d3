"""Single-person HybrIK demo: image / folder / video in, mesh overlay out.

The logic behind ``demo.py``: :func:`run` checks the inputs
(:mod:`hybrik_jax.demo.inputs`), loads the checkpoint, runs the
:class:`~hybrik_jax.demo.predictor.Predictor` over batches of images or
video frames and writes the results (:mod:`hybrik_jax.demo.outputs`). No
person detector is used (nothing can be downloaded): the person box is the
whole image unless ``--bbox`` or ``--bbox-file`` gives one. The camera
convention is in :mod:`hybrik_jax.demo.camera`, the mesh placement in
:mod:`hybrik_jax.demo.placement`.

Output files have unique names (:func:`~hybrik_jax.demo.outputs.output_names`).
Files of an earlier run in the same output folder are replaced, with one
warning (before the model is loaded) saying how many; an output that would
replace one of the inputs is refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hybrik_jax.demo.camera import DEFAULT_PERSON_HEIGHT_M, default_camera
from hybrik_jax.demo.inputs import (
  VIDEO_EXTS,
  DemoError,
  bbox_for,
  iter_video,
  list_images,
  load_bbox_file,
  load_image,
  parse_bbox,
  video_info,
)
from hybrik_jax.demo.outputs import (
  image_output_paths,
  output_names,
  render_overlay,
  result_arrays,
  video_output_paths,
  write_obj,
)
from hybrik_jax.demo.predictor import Predictor, resolve_image_size

log = logging.getLogger(__name__)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
  """Consecutive slices of ``items`` of ``size`` (the last may be shorter)."""
  for start in range(0, len(items), size):
    yield items[start : start + size]


def _check_outputs(
  planned: Sequence[Path], inputs: Sequence[Path], out_dir: Path
) -> int:
  """Refuses outputs that would replace an input; warns about (and counts)
  the existing files they replace."""
  resolved = {p.resolve() for p in inputs}
  for path in planned:
    if path.resolve() in resolved:
      raise DemoError(
        f"output {path} would replace the input of the same name; choose "
        "another --out"
      )
  existing = [p for p in planned if p.exists()]
  if existing:
    log.warning(
      "replacing %d existing file(s) in %s (%s%s); use another --out to "
      "keep them",
      len(existing),
      out_dir,
      existing[0].name,
      ", ..." if len(existing) > 1 else "",
    )
  return len(existing)


def _imwrite(path: Path, image: np.ndarray) -> None:
  """``cv2.imwrite`` that raises DemoError instead of returning False."""
  if not cv2.imwrite(str(path), image):
    raise DemoError(f"cannot write {path}")


def run(
  checkpoint: str | Path,
  input_path: str | Path,
  out_dir: str | Path = "runs/demo",
  bbox: str | None = None,
  bbox_file: str | Path | None = None,
  focal: float | None = None,
  image_size: int | None = None,
  batch_size: int = 8,
  person_height_m: float = DEFAULT_PERSON_HEIGHT_M,
  placement: str = "fit",
  progress: bool = True,
  variables: Mapping[str, Any] | None = None,
  precision: str | None = None,
) -> dict:
  """Runs the demo on an image, a folder of images or a video.

  Args:
    checkpoint: converted checkpoint folder or training run / step folder.
    input_path: image file, folder of images, or video (.mp4, .avi, ...).
    out_dir: output folder (created).
    bbox: ``"x,y,w,h"`` person box for every image / frame.
    bbox_file: per-image / per-frame boxes (format:
      :mod:`hybrik_jax.demo.inputs`).
    focal: focal length in pixels (default ``max(H, W)``).
    image_size: network input size (default: the checkpoint's).
    batch_size: images per jitted call.
    person_height_m: root depth prior (metres spanned by the longer box side).
    placement: 'fit' or 'bbox' (:mod:`hybrik_jax.demo.placement`).
    progress: tqdm progress bars for folders and videos.
    variables: already loaded variables (skips loading ``checkpoint``).
    precision: ``lax.Precision`` name of the network's matmuls and
      convolutions ('high', 'highest'); None = the backend's default.

  Returns:
    {'outputs': [written paths, all distinct], 'num_images': int, 'kind':
    'image' | 'folder' | 'video', 'replaced': how many of the outputs
    existed before (replaced, with a warning)}.

  Raises:
    DemoError: bad input (missing checkpoint / input, unreadable image,
      empty folder, bad box), or an output that would replace an input.
  """
  from tqdm import tqdm

  checkpoint = Path(checkpoint)
  if not checkpoint.exists():
    raise DemoError(f"checkpoint {checkpoint} does not exist")
  input_path = Path(input_path)
  if not input_path.exists():
    raise DemoError(f"--input {input_path} does not exist")
  default_box = parse_bbox(bbox) if bbox is not None else None
  boxes = load_bbox_file(bbox_file) if bbox_file is not None else None
  if focal is not None and not (math.isfinite(focal) and focal > 0):
    raise DemoError(f"--focal must be a positive number of pixels, got {focal}")
  size = resolve_image_size(checkpoint, image_size)

  if input_path.is_dir():
    kind, items = "folder", list_images(input_path)
  elif input_path.suffix.lower() in VIDEO_EXTS:
    kind, items = "video", None
    video_info(input_path)  # fail before loading the model
  else:
    kind, items = "image", [input_path]
    load_image(input_path)  # fail before loading the model
  out_dir = Path(out_dir)
  if kind == "video":
    names = [input_path.stem]
    planned = video_output_paths(out_dir, names[0])
  else:
    names = output_names(items)
    planned = [p for n in names for p in image_output_paths(out_dir, n)]
  replaced = _check_outputs(
    planned, [input_path] if items is None else items, out_dir
  )

  if variables is None:
    from hybrik_jax.train import checkpointing

    try:
      variables = checkpointing.load_inference_variables(checkpoint)
    except (checkpointing.CheckpointNotFoundError, OSError, ValueError) as e:
      raise DemoError(f"cannot load checkpoint {checkpoint}: {e}") from None
  if kind == "video":
    batch_size = min(batch_size, max(video_info(input_path)[1], 1))
  else:
    batch_size = min(batch_size, len(items))
  predictor = Predictor(
    variables, size, batch_size, person_height_m, placement, precision
  )
  out_dir.mkdir(parents=True, exist_ok=True)
  if kind == "video":
    result = _run_video(
      predictor, input_path, planned, default_box, boxes, focal, progress
    )
    return {**result, "replaced": replaced}
  name_of = dict(zip(items, names))

  outputs, warned = [], []
  bar = tqdm(
    total=len(items),
    desc="demo",
    unit="img",
    disable=not progress or kind == "image",
  )
  for chunk in _chunks(items, predictor.batch_size):
    images, bboxes, cams = [], [], []
    for path in chunk:
      img = load_image(path)
      h, w = img.shape[:2]
      rel = str(path.relative_to(input_path)) if kind == "folder" else path.name
      bboxes.append(
        bbox_for(
          boxes,
          (rel, path.name, path.stem),
          default_box,
          h,
          w,
          f"{path}",
          warned,
        )
      )
      images.append(img)
      cams.append(default_camera(h, w, focal))
    for path, img, cam, res in zip(
      chunk, images, cams, predictor(images, bboxes, cams)
    ):
      png, obj, npz = image_output_paths(out_dir, name_of[path])
      overlay = render_overlay(
        img, res["vertices"], predictor.faces, cam, predictor.face_colors
      )
      _imwrite(png, overlay)
      write_obj(obj, res["vertices"], predictor.faces)
      np.savez(npz, **result_arrays([res], stack=False))
      outputs += [png, obj, npz]
      bar.update(1)
  bar.close()
  return {
    "outputs": outputs,
    "num_images": len(items),
    "kind": kind,
    "replaced": replaced,
  }


def _run_video(
  predictor: Predictor,
  path: Path,
  planned: Sequence[Path],
  default_box,
  boxes,
  focal,
  progress,
) -> dict:
  """Runs a video; ``planned`` = [overlay mp4, npz] (video_output_paths)."""
  from tqdm import tqdm

  fps, count = video_info(path)
  mp4, npz = planned
  writer, results, warned, index = None, [], [], 0
  bar = tqdm(
    total=count or None, desc="demo", unit="frame", disable=not progress
  )
  frames = iter_video(path)
  try:
    while True:
      chunk = [f for _, f in zip(range(predictor.batch_size), frames)]
      if not chunk:
        break
      h, w = chunk[0].shape[:2]
      cam = default_camera(h, w, focal)
      bboxes = [
        bbox_for(
          boxes,
          (str(index + i),),
          default_box,
          h,
          w,
          f"{path} frame {index + i}",
          warned,
        )
        for i in range(len(chunk))
      ]
      preds = predictor(chunk, bboxes, [cam] * len(chunk))
      for frame, res in zip(chunk, preds):
        overlay = render_overlay(
          frame, res["vertices"], predictor.faces, cam, predictor.face_colors
        )
        if writer is None:
          writer = cv2.VideoWriter(
            str(mp4),
            cv2.VideoWriter_fourcc(*"mp4v"),
            fps,
            (overlay.shape[1], overlay.shape[0]),
          )
          if not writer.isOpened():
            raise DemoError(f"cannot write video {mp4}")
        writer.write(overlay)
        results.append(res)
        bar.update(1)
      index += len(chunk)
  finally:
    bar.close()
    if writer is not None:
      writer.release()
  if not results:
    raise DemoError(f"cannot read any frame of video {path}")
  arrays = result_arrays(results, stack=True)
  arrays["fps"] = np.float32(fps)
  np.savez(npz, **arrays)
  return {
    "outputs": [mp4, npz],
    "num_images": len(results),
    "kind": "video",
  }
