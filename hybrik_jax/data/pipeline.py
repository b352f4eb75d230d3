"""Grain input pipeline: mixing, per-host sharding, batching, resumable state.

Training stream (mmhuman3d's `MixedDataset` + `DistributedSampler` semantics):

* An epoch has `steps_per_epoch = ceil(max_k len_k / global_batch)` steps
  (the mixed dataset's length is its largest member's; mmhuman3d's
  DistributedSampler rounds up). Every step is a full global batch: since
  `MixedDataset.__getitem__` ignores its index, the few extra samples of the
  last batch are just more random draws.
* Global sample position `p` of epoch `e` (0 <= p < steps_per_epoch *
  global_batch) uses its own generator `np.random.default_rng([seed, e, p])`:
  it picks dataset k with probability `weight_k / sum(weights)`, a sample
  j ~ U{0..len_k-1} (with replacement), then the transform draws
  (`transforms.sample_draws`). A sample is therefore a pure function of
  (seed, epoch, position): independent of worker count, host count and of
  where the iterator was resumed.
* Host h of H (`jax.process_index()`, `jax.process_count()`) builds the rows
  [h * local_batch, (h + 1) * local_batch) of every global batch, where
  `local_batch = global_batch / H` (= per-device batch x local devices).
* Batches are dicts of numpy arrays with a leading [local_batch] axis.
* `get_state()` is `{'step': next step, ...}` (JSON-serialisable);
  `set_state()` rebuilds the grain pipeline from that step.

Evaluation stream: sequential over one dataset, no randomness; the last
global batch is padded (repeating sample 0) and `batch['valid']` [local_batch]
marks the real rows, so every sample is evaluated exactly once across hosts.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np

from hybrik_jax.data import sources as sources_lib

_BIG = 2**40  # "infinitely many" steps for an open-ended training stream.


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One dataset of the mix.

  Attributes:
    name: short name ('h36m', 'mpi_inf_3dhp', 'coco', 'pw3d', ...).
    ann_file: source='npz': the HumanData `.npz` path; source='tfds': the tfds
      name with config, e.g. 'hybrik_data/h36m'.
    image_root: source='npz': folder the npz `image_path`s are relative to;
      source='tfds': the tfds data_dir.
    weight: mixing partition (mmhuman3d: h36m 0.4, mpi_inf_3dhp 0.1, coco 0.5);
      normalised over the mix.
    source: 'npz' or 'tfds'.
    split: tfds split ('train' / 'test'); unused for 'npz'.
    dataset_name: mmhuman3d dataset name selecting the target branch ('h36m',
      'mpi_inf_3dhp', 'coco', 'pw3d'); default `name`. For 'tfds' it is fixed
      at build time.
    bad_samples: what to do with samples holding unusable values (NaN,
      empty boxes, ...; see `sample_checks`): 'fail' (error naming file,
      field, reason and indices) or 'skip' (leave them out); 'npz' only.
  """

  name: str
  ann_file: str
  image_root: str
  weight: float = 1.0
  source: str = "npz"
  split: str = "train"
  dataset_name: str | None = None
  bad_samples: str = "fail"

  def make_source(self, test_mode: bool = False):
    return sources_lib.make_source(
      self.name,
      self.ann_file,
      self.image_root,
      self.source,
      self.split,
      self.dataset_name,
      test_mode,
      self.bad_samples,
    )


class TrainSampleFn:
  """(rng, annotation, image) -> `transforms.train_sample` with fresh draws."""

  def __init__(self, transform_config=None):
    self.config = transform_config

  def __call__(self, rng, annotation, image):
    from hybrik_jax.data import transforms

    config = self.config or transforms.DEFAULT_CONFIG
    draws = transforms.sample_draws(rng, annotation, image.shape, config)
    return transforms.train_sample(annotation, image, draws, config)


class TestSampleFn:
  """(annotation, image) -> `transforms.test_sample`."""

  def __init__(self, transform_config=None):
    self.config = transform_config

  def __call__(self, annotation, image):
    from hybrik_jax.data import transforms

    return transforms.test_sample(
      annotation, image, self.config or transforms.DEFAULT_CONFIG
    )


def check_precrop_covers(transform_config) -> None:
  """Raises if augmentations exceed what the pre-cropped records cover.

  The tfds records are cropped for `precrop.PrecropConfig()` (the mmhuman3d
  recipe's scale factor 0.25 and rotation clip 60 degrees).
  """
  from hybrik_jax.data import precrop, transforms

  cfg = transform_config or transforms.DEFAULT_CONFIG
  crop = precrop.PrecropConfig()
  if (
    cfg.scale_factor > crop.scale_factor
    or 2 * cfg.rot_factor > crop.max_rotation_deg
    and cfg.rot_prob > 0
  ):
    raise ValueError(
      f"augmentation scale_factor={cfg.scale_factor}, rotation up to "
      f"{2 * cfg.rot_factor} deg exceeds what the pre-cropped tfds records "
      f"cover (scale_factor {crop.scale_factor}, rotation "
      f"{crop.max_rotation_deg} deg); rebuild them with a larger "
      'PrecropConfig or use source="npz"'
    )


def _stack(samples: Sequence[dict]) -> dict:
  return {k: np.stack([np.asarray(s[k]) for s in samples]) for k in samples[0]}


def host_slice(global_batch: int, process_index: int, process_count: int):
  """Rows [start, start + local_batch) of each global batch owned by a host."""
  if global_batch % process_count:
    raise ValueError(
      f"global batch {global_batch} is not divisible by the "
      f"{process_count} hosts"
    )
  local_batch = global_batch // process_count
  if not 0 <= process_index < process_count:
    raise ValueError(
      f"process_index {process_index} not in [0, {process_count})"
    )
  return process_index * local_batch, local_batch


def _jax_process():
  import jax

  return jax.process_index(), jax.process_count()


class _MixedSampleFn:
  """Local stream element e -> one training sample (picklable for workers)."""

  def __init__(
    self,
    sources,
    weights,
    seed,
    global_batch,
    host_start,
    local_batch,
    steps_per_epoch,
    sample_fn,
  ):
    self.sources = sources
    self.probs = np.asarray(weights, np.float64) / np.sum(weights)
    self.lengths = [len(s) for s in sources]
    self.seed = seed
    self.global_batch = global_batch
    self.host_start = host_start
    self.local_batch = local_batch
    self.steps_per_epoch = steps_per_epoch
    self.sample_fn = sample_fn

  def locate(self, element: int):
    """Local element -> (epoch, global position in the epoch)."""
    step, row = divmod(int(element), self.local_batch)
    epoch, step_in_epoch = divmod(step, self.steps_per_epoch)
    return epoch, step_in_epoch * self.global_batch + self.host_start + row

  def choose(self, epoch: int, position: int):
    """(epoch, position) -> (dataset k, sample j, generator for the draws)."""
    rng = np.random.default_rng([self.seed, epoch, position])
    k = int(rng.choice(len(self.probs), p=self.probs))
    j = int(rng.integers(self.lengths[k]))
    return k, j, rng

  def __call__(self, element: int) -> dict:
    epoch, position = self.locate(element)
    k, j, rng = self.choose(epoch, position)
    source = self.sources[k]
    annotation, image = source[j]
    try:
      return self.sample_fn(rng, annotation, image)
    except Exception as e:
      raise RuntimeError(
        f"transform failed on {source.name}[{j}] "
        f"(epoch {epoch}, position {position})"
      ) from e


class _EvalSampleFn:
  """Local element e -> test sample + 'valid' + 'sample_idx'."""

  def __init__(self, source, global_batch, host_start, local_batch, sample_fn):
    self.source = source
    self.length = len(source)
    self.global_batch = global_batch
    self.host_start = host_start
    self.local_batch = local_batch
    self.sample_fn = sample_fn

  def __call__(self, element: int) -> dict:
    step, row = divmod(int(element), self.local_batch)
    position = step * self.global_batch + self.host_start + row
    valid = position < self.length
    j = position if valid else 0
    annotation, image = self.source[j]
    sample = dict(self.sample_fn(annotation, image))
    sample["valid"] = np.bool_(valid)
    sample["sample_idx"] = np.asarray(annotation.get("sample_idx", j), np.int32)
    return sample


def _ensure_absl_flags_parsed():
  # grain's multiprocessing reads absl flags; outside an absl app (pytest,
  # notebooks) they are unparsed, so take the defaults.
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class Loader:
  """Iterator of host-local batches with a checkpointable position.

  Attributes:
    steps_per_epoch: global steps (= batches per host) per epoch.
    num_steps: total steps of the stream (None: unbounded).
    step: index of the next batch `next()` returns.
  """

  def __init__(
    self,
    element_fn,
    local_batch: int,
    steps_per_epoch: int,
    num_steps: int | None,
    worker_count: int,
    fingerprint: dict,
    worker_buffer_size: int = 2,
  ):
    self._element_fn = element_fn
    self._local_batch = local_batch
    self.steps_per_epoch = steps_per_epoch
    self.num_steps = num_steps
    self._worker_count = worker_count
    self._worker_buffer_size = worker_buffer_size
    self._fingerprint = dict(fingerprint)
    self.step = 0
    self._iter = None

  def _build(self, start_step: int):
    end_step = self.num_steps if self.num_steps is not None else _BIG
    lb = self._local_batch
    ds = grain.MapDataset.range(start_step * lb, end_step * lb)
    ds = ds.map(self._element_fn).batch(lb, batch_fn=_stack)
    it = ds.to_iter_dataset(
      grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
    )
    if self._worker_count > 0:
      _ensure_absl_flags_parsed()
      it = it.mp_prefetch(
        grain.MultiprocessingOptions(
          num_workers=self._worker_count,
          per_worker_buffer_size=self._worker_buffer_size,
        )
      )
    return iter(it)

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self.num_steps is not None and self.step >= self.num_steps:
      raise StopIteration
    if self._iter is None:
      self._iter = self._build(self.step)
    batch = next(self._iter)
    self.step += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    """JSON-serialisable position: the next step plus the stream's identity."""
    return {"step": int(self.step), **self._fingerprint}

  def set_state(self, state: dict[str, Any]) -> None:
    """Resumes at `state['step']`; refuses a state of a different stream."""
    for key, value in self._fingerprint.items():
      if key in state and state[key] != value:
        raise ValueError(
          f"loader state has {key}={state[key]!r} but this "
          f"loader has {key}={value!r}"
        )
    self.close()
    self.step = int(state["step"])

  def close(self) -> None:
    """Stops worker processes (if any)."""
    it, self._iter = self._iter, None
    if it is not None and hasattr(it, "close"):
      it.close()

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass


def make_train_loader(
  datasets: Sequence[DatasetSpec | Any],
  seed: int,
  global_batch: int,
  worker_count: int = 0,
  transform_config: Any = None,
  num_epochs: int | None = None,
  process_index: int | None = None,
  process_count: int | None = None,
  sample_fn: Callable[..., dict] | None = None,
):
  """Mixed, sharded, resumable training loader.

  Args:
    datasets: `DatasetSpec`s, or ready sources (objects with `name`, `len()`
      and `[j] -> (annotation, image)`) paired with weights as `(source,
      weight)` tuples.
    seed: stream seed.
    global_batch: batch over all hosts (per-device batch x device count;
      mmhuman3d: 32 x 8 = 256).
    worker_count: grain worker processes (0: in the calling process).
    transform_config: `transforms.TransformConfig` (default: the config's).
    num_epochs: stop after this many epochs (None: unbounded).
    process_index, process_count: host identity (default: from jax).
    sample_fn: `(rng, annotation, image) -> dict` replacing the default
      `sample_draws` + `train_sample` (tests, benchmarks).

  Returns:
    (loader, steps_per_epoch): `loader` yields dicts of numpy arrays
    [global_batch / process_count, ...]; steps_per_epoch = ceil(max_k len_k /
    global_batch) (also `loader.steps_per_epoch`).
  """
  if process_index is None or process_count is None:
    process_index, process_count = _jax_process()
  host_start, local_batch = host_slice(
    global_batch, process_index, process_count
  )
  if any(isinstance(d, DatasetSpec) and d.source == "tfds" for d in datasets):
    check_precrop_covers(transform_config)
  srcs, weights = [], []
  for d in datasets:
    if isinstance(d, DatasetSpec):
      srcs.append(d.make_source())
      weights.append(d.weight)
    else:
      srcs.append(d[0])
      weights.append(d[1])
  if not srcs or min(weights) < 0 or sum(weights) <= 0:
    raise ValueError(
      f"need datasets with non-negative weights summing > 0, got {weights}"
    )
  lengths = [len(s) for s in srcs]
  for s, n in zip(srcs, lengths):
    if n == 0:
      raise ValueError(f"dataset {s.name} is empty")
  steps_per_epoch = math.ceil(max(lengths) / global_batch)
  fn = _MixedSampleFn(
    srcs,
    weights,
    seed,
    global_batch,
    host_start,
    local_batch,
    steps_per_epoch,
    sample_fn or TrainSampleFn(transform_config),
  )
  num_steps = None if num_epochs is None else num_epochs * steps_per_epoch
  fingerprint = {
    "seed": int(seed),
    "global_batch": int(global_batch),
    "lengths": [int(n) for n in lengths],
  }
  loader = Loader(
    fn, local_batch, steps_per_epoch, num_steps, worker_count, fingerprint
  )
  return loader, steps_per_epoch


def make_eval_loader(
  dataset: DatasetSpec | Any,
  global_batch: int,
  worker_count: int = 0,
  transform_config: Any = None,
  process_index: int | None = None,
  process_count: int | None = None,
  sample_fn: Callable[..., dict] | None = None,
):
  """Sequential evaluation loader covering every sample exactly once.

  Args:
    dataset: a `DatasetSpec` or a ready source.
    global_batch: batch over all hosts.
    worker_count: grain worker processes.
    transform_config: `transforms.TransformConfig` (default: the config's).
    process_index, process_count: host identity (default: from jax).
    sample_fn: `(annotation, image) -> dict` replacing `test_sample`.

  Returns:
    (loader, num_steps). Each batch has the test transform's keys plus
    'valid' [local_batch] bool (False on padding rows) and 'sample_idx'
    [local_batch] int64. Position p of the sequence is row p % global_batch
    of step p // global_batch.
  """
  if process_index is None or process_count is None:
    process_index, process_count = _jax_process()
  host_start, local_batch = host_slice(
    global_batch, process_index, process_count
  )
  source = (
    dataset.make_source(test_mode=True)
    if isinstance(dataset, DatasetSpec)
    else dataset
  )
  num_steps = math.ceil(len(source) / global_batch)
  fn = _EvalSampleFn(
    source,
    global_batch,
    host_start,
    local_batch,
    sample_fn or TestSampleFn(transform_config),
  )
  loader = Loader(
    fn,
    local_batch,
    num_steps,
    num_steps,
    worker_count,
    {"global_batch": int(global_batch), "lengths": [len(source)]},
  )
  return loader, num_steps
