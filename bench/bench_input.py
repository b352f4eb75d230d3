"""Input-pipeline throughput: pre-cropped ArrayRecords vs full-frame JPEGs.

Builds a synthetic "small person in a big frame" dataset (the package's
synthetic renderer, each image pasted at a random place into a larger
frame with a smooth random background; annotations and principal point
shifted accordingly), writes it as HumanData npz + JPEG frames and as a
pre-cropped tfds ArrayRecord dataset, then times the full HybrIK train
transform (decode -> DPG -> scale/rotation -> occlusion -> flip -> affine
-> targets -> noise -> normalise) in ONE process (= one grain worker), and
the grain loader with several workers.

  .venv/bin/python bench/bench_input.py --frame 1080 1920 --num 48 \
      --samples 200 --workers 0 2
"""

import os
import tempfile
import time

import cv2
import numpy as np
from absl import flags

from hybrik_jax import cli
from hybrik_jax.data import human_data, pipeline, synthetic, tfds_builder


def _background(rng, h, w):
  small = rng.integers(
    0, 256, (max(h // 64, 2), max(w // 64, 2), 3), dtype=np.uint8
  )
  bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
  noise = rng.integers(0, 24, (h, w, 3), dtype=np.uint8)
  return cv2.add(bg, noise)


def make_big_frame_dataset(src_dir, out_dir, frame_hw, seed=0):
  """Pastes every synthetic train frame into a larger frame; returns out_dir."""
  rng = np.random.default_rng(seed)
  hd = human_data.load_human_data(os.path.join(src_dir, "synthetic_train.npz"))
  data = {k: hd[k] for k in hd}  # keypoints padded to 190
  big_h, big_w = frame_hw
  os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
  n = len(data["image_path"])
  data["bbox_xywh"] = np.array(data["bbox_xywh"], np.float64)
  cam = dict(data["cam_param"])
  cam["c"] = np.array(cam["c"], np.float64)
  for i, rel in enumerate(data["image_path"]):
    image = cv2.imread(os.path.join(src_dir, rel))
    h, w = image.shape[:2]
    ox = int(rng.integers(0, big_w - w + 1))
    oy = int(rng.integers(0, big_h - h + 1))
    frame = _background(rng, big_h, big_w)
    frame[oy : oy + h, ox : ox + w] = image
    cv2.imwrite(
      os.path.join(out_dir, rel), frame, [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    data["bbox_xywh"][i, :4] += [ox, oy, ox, oy]
    for key in ("keypoints3d", "keypoints3d17"):
      kp = np.array(data[key])
      vis = kp[i, :, -1] > 0
      kp[i, vis, 0] += ox
      kp[i, vis, 1] += oy
      data[key] = kp
    cam["c"][i] += [ox, oy]
  f = np.asarray(cam["f"], np.float64)
  k = np.zeros((n, 3, 3))
  k[:, 0, 0], k[:, 1, 1] = f[:, 0], f[:, 1]
  k[:, :2, 2] = cam["c"]
  k[:, 2, 2] = 1
  cam["intrinsic"] = np.linalg.inv(k)
  data["cam_param"] = cam
  data["image_height"] = [big_h] * n
  data["image_width"] = [big_w] * n
  human_data.save_human_data(os.path.join(out_dir, "synthetic_train.npz"), data)
  # The builder's 'synthetic' config also wants a test split: reuse train.
  human_data.save_human_data(os.path.join(out_dir, "synthetic_test.npz"), data)
  return out_dir


def time_one_process(spec, samples, seed=0):
  """Per-image cost of reading and transforming in this process (one worker).

  Returns:
    dict: read_ms / total_ms (CPU time of this process per image: robust to
    other load on the machine), wall_ms (wall time per image), px (stored
    pixels per image).
  """
  source = spec.make_source()
  fn = pipeline.TrainSampleFn()
  rng = np.random.default_rng(seed)
  idx = [int(rng.integers(len(source))) for _ in range(samples)]
  source[idx[0]]  # open files
  cpu_read = cpu_total = wall = 0.0
  for i, j in enumerate(idx):
    w0, c0 = time.perf_counter(), time.process_time()
    annotation, image = source[j]
    c1 = time.process_time()
    fn(np.random.default_rng([seed, i]), annotation, image)
    c2, w2 = time.process_time(), time.perf_counter()
    cpu_read += c1 - c0
    cpu_total += c2 - c0
    wall += w2 - w0
  if hasattr(source, "record"):
    px = np.mean(
      [
        cv2.imdecode(source.record(j)["image"], cv2.IMREAD_UNCHANGED).size // 3
        for j in range(len(source))
      ]
    )
  else:
    px = image.shape[0] * image.shape[1]
  return {
    "read_ms": 1e3 * cpu_read / samples,
    "total_ms": 1e3 * cpu_total / samples,
    "wall_ms": 1e3 * wall / samples,
    "px": px,
  }


def time_loader(spec, samples, workers, batch=8):
  loader, _ = pipeline.make_train_loader(
    [spec],
    seed=0,
    global_batch=batch,
    worker_count=workers,
    process_index=0,
    process_count=1,
  )
  try:
    next(loader)  # start-up (worker processes) not counted
    steps = max(samples // batch, 1)
    t0 = time.perf_counter()
    for _ in range(steps):
      next(loader)
    return steps * batch / (time.perf_counter() - t0)
  finally:
    loader.close()


def prepare_datasets(work, num, frame_hw):
  """Synthetic persons pasted into big frames, as npz + JPEG files and as
  pre-cropped tfds records (built once per ``work`` folder).

  Returns:
    {'full frame (npz+jpeg)': DatasetSpec, 'pre-cropped (tfds)': DatasetSpec}
  """
  src = os.path.join(work, "synthetic")
  if not os.path.exists(os.path.join(src, "synthetic_train.npz")):
    synthetic.generate(
      src, num + 1, num_test=1, image_size=(240, 320), progress=False
    )
  big = os.path.join(work, f"big_{frame_hw[0]}x{frame_hw[1]}")
  if not os.path.exists(os.path.join(big, "synthetic_train.npz")):
    make_big_frame_dataset(src, big, tuple(frame_hw))
  data_dir = os.path.join(work, f"tfds_{frame_hw[0]}x{frame_hw[1]}")
  if not os.path.exists(data_dir):
    t0 = time.perf_counter()
    tfds_builder.build("synthetic", big, data_dir, num_threads=2)
    print(f"tfds build: {num} samples in {time.perf_counter() - t0:.1f} s")
  return {
    "full frame (npz+jpeg)": pipeline.DatasetSpec(
      "synthetic",
      os.path.join(big, "synthetic_train.npz"),
      big,
      dataset_name="h36m",
    ),
    "pre-cropped (tfds)": pipeline.DatasetSpec(
      "synthetic",
      "hybrik_data/synthetic",
      data_dir,
      source="tfds",
      dataset_name="h36m",
    ),
  }


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list(
    "frame", ["1080", "1920"], "Big frame size H,W.", flag_values=fv
  )
  flags.DEFINE_integer("num", 48, "Dataset size.", flag_values=fv)
  flags.DEFINE_integer(
    "samples", 200, "Samples timed per configuration.", flag_values=fv
  )
  flags.DEFINE_list(
    "workers",
    ["0", "2"],
    "Grain worker counts for the loader timing.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "rounds", 3, "Interleaved timing rounds.", flag_values=fv
  )
  flags.DEFINE_string(
    "workdir", None, "Where to write the datasets.", flag_values=fv
  )


def main(argv=None):
  args, _ = cli.parse(
    define_flags, argv, "python bench/bench_input.py", __doc__
  )
  args.frame = tuple(int(v) for v in args.frame)
  args.workers = [int(v) for v in args.workers]

  work = args.workdir or tempfile.mkdtemp(prefix="bench_input_")
  specs = prepare_datasets(work, args.num, args.frame)
  print(
    f"\nframe {args.frame[0]}x{args.frame[1]}, person ~240x320 px, "
    f"{args.samples} samples x {args.rounds} rounds, "
    f"{os.cpu_count()} CPUs visible; per-worker rates from CPU time "
    "(median over rounds)"
  )
  results = {name: [] for name in specs}
  for _ in range(args.rounds):  # interleaved: both see the same load
    for name, spec in specs.items():
      results[name].append(time_one_process(spec, args.samples))
  header = (
    f"{'source':24s} {'stored px/img':>13s} {'read ms':>8s} "
    f"{'read+aug ms':>11s} {'img/s/worker':>12s} {'wall img/s':>10s} "
    + " ".join(f"{f'loader w={w}':>12s}" for w in args.workers)
  )
  print(header)
  for name, spec in specs.items():
    med = {
      k: float(np.median([r[k] for r in results[name]]))
      for k in results[name][0]
    }
    loader_rates = [time_loader(spec, args.samples, w) for w in args.workers]
    print(
      f"{name:24s} {med['px']:13.0f} {med['read_ms']:8.2f} "
      f"{med['total_ms']:11.2f} {1e3 / med['total_ms']:12.1f} "
      f"{1e3 / med['wall_ms']:10.1f} "
      + " ".join(f"{r:12.1f}" for r in loader_rates)
    )
  print(
    "loader w=N: wall-clock img/s of the grain loader (batch 8) with N "
    "worker processes (w=0: in-process); on a loaded machine with few "
    "cores these are dominated by contention."
  )


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
