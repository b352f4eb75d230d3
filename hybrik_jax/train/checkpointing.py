"""Training checkpoints with orbax: keep-last-K + best, async, exact resume.

A checkpoint holds the whole :class:`~hybrik_jax.train.state.TrainState`
(params, batch statistics, optimiser state, step, PRNG key, constants) and
the input pipeline's iterator state (JSON), so that a killed run resumes
bit-exactly. Steps are written atomically by orbax (a temporary directory
renamed on commit), so a kill during a save leaves the previous checkpoints
intact. If the newest checkpoint nevertheless fails to restore (corrupt
files), :meth:`Checkpointer.restore_latest` warns and falls back to the one
before it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import serialization
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from hybrik_jax import errors, storage

log = logging.getLogger(__name__)

BEST_METRIC = "pa_mpjpe"  # lower is better


class Checkpointer:
  """Owns an orbax ``CheckpointManager`` under ``<workdir>/checkpoints``.

  Args:
    workdir: run directory (local, or remote such as ``gs://bucket/run``).
    keep: how many most recent checkpoints to keep (the best one by
      validation PA-MPJPE is kept in addition).
    async_save: write in a background thread (orbax async checkpointing).
  """

  def __init__(self, workdir: Any, keep: int = 3, async_save: bool = True):
    self.directory = storage.path(workdir) / "checkpoints"
    policy = pp.AnyPreservationPolicy(
      [
        pp.LatestN(n=keep),
        pp.BestN(
          get_metric_fn=lambda m: m[BEST_METRIC],
          reverse=True,
          n=1,
          keep_checkpoints_without_metrics=False,
        ),
      ]
    )
    options = ocp.CheckpointManagerOptions(
      preservation_policy=policy,
      enable_async_checkpointing=async_save,
      create=True,
      cleanup_tmp_directories=True,
    )
    self.manager = ocp.CheckpointManager(
      self.directory, options=options, item_names=("state", "data_iter")
    )

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(
    self,
    step: int,
    state: Any,
    data_iter_state: Mapping[str, Any],
    metrics: Mapping[str, float] | None = None,
  ) -> None:
    """Saves ``state`` and the iterator state at ``step`` (async)."""
    self.manager.save(
      int(step),
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data_iter=ocp.args.JsonSave(dict(data_iter_state)),
      ),
      metrics=dict(metrics) if metrics else None,
      force=True,
    )

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores checkpoint ``step`` into the structure of ``abstract_state``."""
    restored = self.manager.restore(
      int(step),
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data_iter=ocp.args.JsonRestore(),
      ),
    )
    return restored["state"], dict(restored["data_iter"])

  def layout_mismatch(self, step: int, abstract_state: Any) -> str | None:
    """How checkpoint ``step``'s saved train state differs in structure
    (array names and shapes) from ``abstract_state``; None if it does not,
    or if its metadata cannot be read (then it is corrupt, not different)."""
    try:
      with _quiet_orbax(), ocp.StandardCheckpointer() as ck:
        saved = ck.metadata(self.directory / str(step) / "state").item_metadata
      saved = _layout(dict(saved))
    except Exception:  # pylint: disable=broad-except
      return None
    want = _layout(serialization.to_state_dict(abstract_state))
    missing = sorted(set(want) - set(saved))
    extra = sorted(set(saved) - set(want))
    reshaped = sorted(k for k in set(want) & set(saved) if want[k] != saved[k])
    parts = []
    if missing:
      parts.append(f"not in the checkpoint: {', '.join(missing[:3])}")
    if extra:
      parts.append(f"not in this config's state: {', '.join(extra[:3])}")
    for k in reshaped[:3]:
      parts.append(f"{k}: saved {saved[k]}, now {want[k]}")
    return "; ".join(parts) or None

  def restore_latest(self, abstract_state: Any) -> tuple[Any, dict, int] | None:
    """Restores the newest readable checkpoint, or returns None if none.

    A checkpoint that fails to load is reported (one line: the step and
    why) and skipped in favour of the previous one. Nothing is deleted: an
    unreadable step folder is renamed ``<step>.unreadable`` (kept for
    inspection) so that training can write that step again.

    Raises:
      RunMismatchError: the newest checkpoint is readable but holds a train
        state of another structure (another model or optimiser config).
    """
    unreadable = []
    result = None
    for step in reversed(self.all_steps()):
      try:
        state, it = self.restore(step, abstract_state)
      except Exception as e:  # pylint: disable=broad-except
        mismatch = self.layout_mismatch(step, abstract_state)
        if mismatch is not None:
          raise errors.RunMismatchError(
            f"checkpoint step {step} in {self.directory} holds a train state "
            f"that does not fit this config ({mismatch}); use a new "
            "--workdir for this config"
          ) from None
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        log.warning(
          "checkpoint step %d in %s is unreadable (%s: %s); trying the one "
          "before it",
          step,
          self.directory,
          type(e).__name__,
          why,
        )
        unreadable.append(step)
        continue
      result = (state, it, step)
      break
    if unreadable:
      log.warning(
        "using checkpoint step %s (skipped unreadable step(s) %s)",
        result[2] if result else "none: starting from scratch",
        ", ".join(map(str, unreadable)),
      )
    if unreadable and jax.process_index() == 0:
      for step in unreadable:
        src = self.directory / str(step)
        dst = self.directory / f"{step}.unreadable"
        n = 1
        while dst.exists():
          dst = self.directory / f"{step}.unreadable{n}"
          n += 1
        src.rename(dst)
        log.warning("moved unreadable checkpoint %s to %s", src, dst)
      self.manager.reload()
    return result

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


@contextlib.contextmanager
def _quiet_orbax():
  """Silences orbax's warning that an item folder (``<step>/state``) has
  no step-level ``_CHECKPOINT_METADATA`` (it never has: that file is one
  level up)."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def _layout(tree: Any, prefix: str = "") -> dict[str, tuple]:
  """{'a/b/c': shape} of a nested dict/list of arrays or array metadata."""
  out = {}
  if isinstance(tree, Mapping):
    for k, v in tree.items():
      out.update(_layout(v, f"{prefix}/{k}" if prefix else str(k)))
  elif isinstance(tree, (list, tuple)) and not hasattr(tree, "shape"):
    for i, v in enumerate(tree):
      out.update(_layout(v, f"{prefix}/{i}"))
  elif tree is not None:
    out[prefix] = tuple(getattr(tree, "shape", ()) or ())
  return out


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStruct tree (with shardings) for restoring into ``tree``."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class CheckpointNotFoundError(errors.InputError, FileNotFoundError):
  """No usable model checkpoint at the given path."""


def load_inference_variables(path: Any, body_model=None) -> dict:
  """Model variables for inference from any checkpoint hybrik-jax writes
  (:func:`load_inference_checkpoint` without its description)."""
  return load_inference_checkpoint(path, body_model)[0]


def load_inference_checkpoint(path: Any, body_model=None) -> tuple[dict, dict]:
  """Model variables for inference from any checkpoint hybrik-jax writes,
  and which checkpoint they are.

  Accepts:
    * a folder written by ``convert_torch_weights.py`` (``variables/`` +
      ``report.json`` + ``smpl_neutral.npz``): the body model comes from the
      checkpoint's own ``smpl_neutral.npz`` unless ``body_model`` is given;
    * a training run directory (its newest readable checkpoint), its
      ``checkpoints/`` folder, or one step folder (``checkpoints/<step>``):
      the body model is the one stored in the checkpoint.

  Returns:
    ({'params', 'batch_stats', 'constants'} with the H36M-regressor body
    model, {'path': the folder read, 'step': the training step or None for
    a conversion, 'architecture': one of
    :data:`hybrik_jax.interop.convert.ARCHITECTURES` (a conversion's
    ``report.json``; training runs: their ``config.json``'s
    ``model.arch``, mmhuman3d's ResNet-34 model when it has none)}).
  """
  from hybrik_jax.interop import convert
  from hybrik_jax.model import hybrik as hybrik_model

  path = storage.path(path)
  if not path.exists():
    raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
  if (path / convert.VARIABLES_DIR).is_dir():
    variables = dict(convert.load_converted(path))
    if body_model is None:
      npz = path / convert.SMPL_NPZ
      if not npz.exists():
        raise CheckpointNotFoundError(
          f"{path}: no {convert.SMPL_NPZ} (the source checkpoint carried no "
          "smpl.* buffers): call load_inference_variables(path, "
          "body_model=hybrik_jax.smpl.load_model(...)) with an SMPL model"
        )
      from hybrik_jax import smpl

      body_model = smpl.load_model(npz)
    if "init_shape" not in variables.get("constants", {}):
      raise CheckpointNotFoundError(
        f"{path}: converted variables lack constants/init_shape"
      )
    arch = convert.architecture_of(convert.load_report(path))
    info = {"path": str(path), "step": None, "architecture": arch}
    return hybrik_model.attach_body_model(variables, body_model), info

  step_dirs = []
  if (path / "state").is_dir():
    step_dirs = [path]
  else:
    ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    step_dirs = sorted(
      (
        p
        for p in ckpt_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / "state").is_dir()
      ),
      key=lambda p: int(p.name),
      reverse=True,
    )
  if not step_dirs:
    raise CheckpointNotFoundError(
      f"{path}: neither a converted checkpoint (variables/) nor a training "
      "run (checkpoints/<step>/state)"
    )
  errors = []
  for step_dir in step_dirs:
    try:
      tree = restore_on_one_device(step_dir / "state")
    except Exception as e:  # pylint: disable=broad-except
      log.warning(
        "checkpoint %s is unreadable (%s: %s); trying an older one",
        step_dir,
        type(e).__name__,
        e,
      )
      errors.append(f"{step_dir.name}: {type(e).__name__}: {str(e)[:200]}")
      continue
    variables = {k: tree[k] for k in ("params", "batch_stats", "constants")}
    if body_model is not None:
      variables = hybrik_model.attach_body_model(variables, body_model)
    if step_dirs[0] is not step_dir:
      log.warning("evaluating checkpoint %s instead", step_dir)
    name = step_dir.name
    step = int(name) if name.isdigit() else None
    return variables, {
      "path": str(step_dir),
      "step": step,
      "architecture": _run_architecture(step_dir),
    }
  raise CheckpointNotFoundError(
    f"{path}: no readable checkpoint ({'; '.join(errors)})"
  )


def _run_architecture(step_dir: Any) -> str:
  """``model.arch`` of the training run a checkpoint belongs to (its
  ``config.json``); mmhuman3d's model when the run names none."""
  from hybrik_jax.interop import convert
  from hybrik_jax.train import run_config

  found = run_config.find_for_checkpoint(step_dir)
  model = (found[1] or {}).get("model", {}) if found else {}
  return model.get("arch", convert.MMHUMAN3D_RESNET34)


def restore_on_one_device(state_dir: Any, device=None) -> Any:
  """Restores a saved ``TrainState`` tree onto one device, whatever the
  topology it was written from (any number of devices and hosts).

  Without a target orbax would rebuild each array with the sharding it was
  saved with (e.g. a 2-device mesh) and refuse on a machine without those
  devices ("topology mismatch"); the target built here from the saved
  shapes and dtypes places every array whole on ``device`` (default: the
  first local device) instead.
  """
  device = jax.local_devices()[0] if device is None else device
  sharding = jax.sharding.SingleDeviceSharding(device)
  state_dir = storage.path(state_dir)
  with _quiet_orbax(), ocp.StandardCheckpointer() as ck:
    metadata = ck.metadata(state_dir).item_metadata
    target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding),
      dict(metadata),
    )
    return ck.restore(state_dir, target)
