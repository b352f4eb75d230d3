"""HybrIK demo: image / folder / video in, mesh overlays and tracks out.

The logic behind ``demo.py``: :func:`run` checks the inputs
(:mod:`hybrik_jax.demo.inputs`), loads the checkpoint (and the person
detector, :mod:`hybrik_jax.demo.detector`, if one is given), runs the
:class:`~hybrik_jax.demo.predictor.Predictor` over batches of people in
images or video frames and writes the results
(:mod:`hybrik_jax.demo.outputs`; videos: :mod:`hybrik_jax.demo.video`).

Where the people come from, first match wins:

1. ``--bbox`` / ``--bbox-file`` (a warning if ``--detector`` is given too:
   it is not used). A box file listing several boxes per key is
   multi-person (:func:`~hybrik_jax.demo.inputs.is_multi_person`).
2. ``--detector model.onnx``: every person the detector finds
   (multi-person).
3. Neither: one person, the whole image.

Multi-person runs draw each person in its own colour, and track the people
of a video (per-track outputs); single-person runs keep the one-person
output layout. The camera convention is in :mod:`hybrik_jax.demo.camera`,
the mesh placement in :mod:`hybrik_jax.demo.placement`.

Output files have unique names (:func:`~hybrik_jax.demo.outputs.output_names`).
Files of an earlier run in the same output folder are replaced, with one
warning (before the model is loaded) saying how many (for a multi-person
video: its overlay and every ``<name>_track<id>.*`` file there, since the
new run's tracks are not known in advance); an output that would replace
one of the inputs is refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hybrik_jax.demo.cam_predictor import AUTHORS_IMAGE_SIZE, CamPredictor
from hybrik_jax.demo.camera import DEFAULT_PERSON_HEIGHT_M, default_camera
from hybrik_jax.demo.inputs import (
  VIDEO_EXTS,
  DemoError,
  bbox_for,
  is_multi_person,
  list_images,
  load_bbox_file,
  load_image,
  parse_bbox,
  people_for,
  video_info,
)
from hybrik_jax.demo.outputs import (
  draw_labels,
  empty_result_arrays,
  existing_track_files,
  image_output_paths,
  output_names,
  person_face_colors,
  render_camera,
  render_overlay,
  result_arrays,
  track_output_paths,
  write_obj,
)
from hybrik_jax.demo.predictor import (
  DTYPES,
  BatchedPredictor,
  Predictor,
  resolve_image_size,
)
from hybrik_jax.interop.authors_mapping import (
  ARCHITECTURES as CAM_ARCHITECTURES,
)

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


def _people_fn(boxes, default_box, detector, multi: bool):
  """``people_fn(image, keys, what) -> ([N, 4] xywh, [N] scores)`` of a run
  (see the module docstring; ``warned`` state shared by the run)."""
  warned: list = []
  if detector is not None:
    from hybrik_jax.demo.detector import xyxy_to_xywh

    def detect(image, keys, what):
      xyxy, scores = detector.detect(image)
      return xyxy_to_xywh(np.asarray(xyxy, np.float64)), scores

    return detect

  def given(image, keys, what):
    h, w = image.shape[:2]
    if multi:
      xywh = people_for(boxes, keys, default_box, h, w, what, warned)
    else:
      xywh = bbox_for(boxes, keys, default_box, h, w, what, warned)[None]
    return xywh, np.ones(len(xywh))

  return given


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
  detector: str | Path | None = None,
  detector_layout: str = "auto",
  det_score: float = 0.5,
  det_nms: float = 0.45,
  person_class: int = 0,
  smooth: str | None = None,
  save_bvh: bool = False,
  bvh_order: str = "ZYX",
  save_pk: bool = False,
  flip_test: bool = False,
  architecture: str | None = None,
  dtype: str = "float32",
) -> dict:
  """Runs the demo on an image, a folder of images or a video.

  Args:
    checkpoint: converted checkpoint folder or training run / step folder.
    input_path: image file, folder of images, or video (.mp4, .avi, ...).
    out_dir: output folder (created).
    bbox: ``"x,y,w,h"`` person box for every image / frame.
    bbox_file: per-image / per-frame boxes, one or several per key (format:
      :mod:`hybrik_jax.demo.inputs`).
    focal: focal length in pixels (default ``max(H, W)``).
    image_size: network input size (default: the checkpoint's).
    batch_size: people (crops) per jitted call; a video's chunk of frames.
    person_height_m: root depth prior (metres spanned by the longer box side).
    placement: 'fit' or 'bbox' (:mod:`hybrik_jax.demo.placement`).
    progress: tqdm progress bars for folders and videos.
    variables: already loaded variables (skips loading ``checkpoint``).
    precision: ``lax.Precision`` name of the network's matmuls and
      convolutions ('high', 'highest'); None = the backend's default.
    detector: person detector ONNX file (YOLOX / YOLOv8 export), used when
      neither ``bbox`` nor ``bbox_file`` is given.
    detector_layout, det_score, det_nms, person_class: the detector's
      ``layout``, ``score_threshold``, ``nms_threshold``, ``person_class``
      (:class:`~hybrik_jax.demo.detector.PersonDetector`).
    smooth: None / 'none' or a :mod:`hybrik_jax.demo.smoothing` kind
      ('oneeuro', 'gaus1d', 'savgol'), per video track.
    save_bvh, bvh_order, save_pk: per-track BVH (Euler order) and ``.pk``
      exports (videos).
    flip_test: the authors' flip test (HRNet-W48 camera model only).
    dtype: the network's compute dtype, 'float32' (default) or 'bfloat16'
      (opt-in; its error against float32 is stated in the README).
    architecture: the model of ``variables`` when they are given (default:
      mmhuman3d's); a checkpoint's own is read from it (``report.json``).

  An authors' camera-model checkpoint (``hrnet_w48_cam``, ``resnet34_cam``)
  places each person with the network's camera
  (:mod:`hybrik_jax.demo.cam_predictor`): ``focal``, ``person_height_m``
  and ``placement`` are not used.

  Returns:
    {'outputs': [written paths, all distinct], 'num_images': int, 'kind':
    'image' | 'folder' | 'video', 'replaced': how many of the outputs
    existed before (replaced, with a warning), 'multi_person': bool}; videos
    add 'tracks' {id: frames}, 'max_people', 'fps' and 'seconds' per stage
    (:func:`hybrik_jax.demo.video.run_video`), images 'people' (per image).

  Raises:
    DemoError: bad input (missing checkpoint / input, unreadable image,
      empty folder, bad box, export flags without a video), or an output
      that would replace an input.
    hybrik_jax.errors.InputError: a detector file that cannot be used.
  """
  from hybrik_jax.demo import video as demo_video

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
  smooth = None if smooth in (None, "none") else smooth
  if smooth is not None and smooth not in demo_video.SMOOTH_KINDS:
    raise DemoError(
      f"--smooth must be one of none, {', '.join(demo_video.SMOOTH_KINDS)}; "
      f"got {smooth!r}"
    )
  if dtype not in DTYPES:
    raise DemoError(f"--dtype must be one of {DTYPES}, got {dtype!r}")
  size = resolve_image_size(checkpoint, image_size)
  if detector is not None and (bbox is not None or bbox_file is not None):
    log.warning(
      "--detector %s is not used: the boxes come from %s",
      detector,
      "--bbox-file" if bbox_file is not None else "--bbox",
    )
    detector = None
  multi = detector is not None or is_multi_person(boxes)

  if input_path.is_dir():
    kind, items = "folder", list_images(input_path)
  elif input_path.suffix.lower() in VIDEO_EXTS:
    kind, items = "video", None
    video_info(input_path)  # fail before loading the model
  else:
    kind, items = "image", [input_path]
    load_image(input_path)  # fail before loading the model
  if kind != "video":
    wanted = [
      flag
      for flag, on in (
        ("--smooth", smooth is not None),
        ("--save-bvh", save_bvh),
        ("--save-pk", save_pk),
      )
      if on
    ]
    if wanted:
      raise DemoError(
        f"{', '.join(wanted)} need(s) a video --input, got the {kind} "
        f"{input_path}"
      )
  out_dir = Path(out_dir)
  stale: list[Path] = []
  if kind == "video":
    names = [input_path.stem]
    planned = [out_dir / f"{names[0]}_overlay.mp4"]
    if multi:
      stale = existing_track_files(out_dir, names[0])
    else:
      planned += track_output_paths(out_dir, names[0], None, save_bvh, save_pk)
  else:
    names = output_names(items)
    planned = [p for n in names for p in image_output_paths(out_dir, n)]
  replaced = _check_outputs(
    planned + stale, [input_path] if items is None else items, out_dir
  )

  person_detector = None
  if detector is not None:
    from hybrik_jax.demo.detector import PersonDetector

    person_detector = PersonDetector(
      detector,
      layout=detector_layout,
      score_threshold=det_score,
      nms_threshold=det_nms,
      person_class=person_class,
    )
  if variables is None:
    from hybrik_jax.train import checkpointing

    try:
      variables, info = checkpointing.load_inference_checkpoint(checkpoint)
    except (checkpointing.CheckpointNotFoundError, OSError, ValueError) as e:
      raise DemoError(f"cannot load checkpoint {checkpoint}: {e}") from None
    architecture = info["architecture"]
  cam_model = architecture in CAM_ARCHITECTURES
  if flip_test and not cam_model:
    raise DemoError(
      "--flip-test is the authors' camera models' option (hrnet_w48_cam); "
      f"{checkpoint} is mmhuman3d's ResNet-34 model"
    )
  if cam_model and focal is not None:
    log.warning(
      "--focal is not used: %s places each person with its own camera "
      "(focal 1000 px per 256-px crop)",
      architecture,
    )
  if not multi:
    if kind == "video":
      batch_size = min(batch_size, max(video_info(input_path)[1], 1))
    else:
      batch_size = min(batch_size, len(items))
  if cam_model:
    if size != AUTHORS_IMAGE_SIZE:
      raise DemoError(
        f"--image-size {size}: the authors' camera models take "
        f"{AUTHORS_IMAGE_SIZE} x {AUTHORS_IMAGE_SIZE} crops"
      )
    predictor = CamPredictor(
      variables, architecture, batch_size, flip_test, precision, dtype
    )
  else:
    predictor = Predictor(
      variables,
      size,
      batch_size,
      person_height_m,
      placement,
      precision,
      dtype,
    )
  people_fn = _people_fn(boxes, default_box, person_detector, multi)
  out_dir.mkdir(parents=True, exist_ok=True)
  if kind == "video":
    result = demo_video.run_video(
      predictor,
      input_path,
      out_dir,
      names[0],
      people_fn,
      multi,
      focal=focal,
      smooth=smooth,
      save_bvh=save_bvh,
      bvh_order=bvh_order,
      save_pk=save_pk,
      progress=progress,
      stale=stale,
    )
    return {**result, "replaced": replaced, "multi_person": multi}
  result = _run_images(
    predictor,
    input_path,
    kind,
    items,
    names,
    out_dir,
    people_fn,
    multi,
    focal,
    progress,
  )
  return {**result, "replaced": replaced, "multi_person": multi}


def _run_images(
  predictor: BatchedPredictor,
  input_path: Path,
  kind: str,
  items: Sequence[Path],
  names: Sequence[str],
  out_dir: Path,
  people_fn,
  multi: bool,
  focal: float | None,
  progress: bool,
) -> dict:
  """Runs an image or a folder (chunks of ``batch_size`` images, all their
  people in one predictor call)."""
  from tqdm import tqdm

  name_of = dict(zip(items, names))
  outputs, people_counts = [], []
  bar = tqdm(
    total=len(items),
    desc="demo",
    unit="img",
    disable=not progress or kind == "image",
  )
  for chunk in _chunks(items, predictor.batch_size):
    images, cams, crops, boxes, owner, scores = [], [], [], [], [], []
    for i, path in enumerate(chunk):
      img = load_image(path)
      h, w = img.shape[:2]
      rel = str(path.relative_to(input_path)) if kind == "folder" else path.name
      xywh, score = people_fn(img, (rel, path.name, path.stem), f"{path}")
      images.append(img)
      cams.append(default_camera(h, w, focal))
      for box, sc in zip(xywh, score):
        crops.append(img)
        boxes.append(np.asarray(box, np.float64))
        owner.append(i)
        scores.append(float(sc))
    preds = predictor(crops, boxes, [cams[i] for i in owner]) if crops else []
    for i, (path, img, cam) in enumerate(zip(chunk, images, cams)):
      mine = [k for k, o in enumerate(owner) if o == i]
      res = [preds[k] for k in mine]
      png, obj, npz = image_output_paths(out_dir, name_of[path])
      view_cam, view_verts = render_camera(
        cam,
        [r["vertices"] for r in res],
        [r["focal"] for r in res],
        res[0]["princpt"] if res else None,
      )
      if multi:
        overlay = render_overlay(
          img,
          view_verts,
          predictor.faces,
          view_cam,
          [
            person_face_colors(predictor.face_colors, p)
            for p in range(len(res))
          ],
        )
        draw_labels(
          overlay, [r["bbox_xywh"] for r in res], range(len(res)), "person"
        )
        write_obj(obj, [r["vertices"] for r in res], predictor.faces)
        arrays = (
          result_arrays(res, stack=True)
          if res
          else empty_result_arrays(predictor.faces.max() + 1)
        )
        arrays["scores"] = np.asarray([scores[k] for k in mine], np.float32)
      else:
        (r,) = res
        overlay = render_overlay(
          img, view_verts[0], predictor.faces, view_cam, predictor.face_colors
        )
        write_obj(obj, r["vertices"], predictor.faces)
        arrays = result_arrays(res, stack=False)
      _imwrite(png, overlay)
      np.savez(npz, **arrays)
      outputs += [png, obj, npz]
      people_counts.append(len(res))
      bar.update(1)
  bar.close()
  return {
    "outputs": outputs,
    "num_images": len(items),
    "kind": kind,
    "people": people_counts,
  }
