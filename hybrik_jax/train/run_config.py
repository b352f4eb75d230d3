"""A run's recorded config (``<workdir>/config.json``) and what a resume may
change.

A rerun of ``train.py`` on a workdir with checkpoints continues that run. It
may change how the run is executed and observed (its length, logging,
checkpoint cadence, validation, data location, workers, the per-device batch
as long as the global batch is unchanged, which the input pipeline's state
checks); any other difference would silently train a different model from
the saved state, so it is refused with a
:class:`~hybrik_jax.errors.RunMismatchError` that names every differing
value, unless the user passes ``--allow_config_change``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hybrik_jax import errors, storage

CONFIG_JSON = "config.json"

# Config keys (dotted; a prefix ends with '.') that a resume may change.
RESUMABLE = (
  "async_checkpointing",
  "checkpoint_every_steps",
  "data.eval_batch_size",
  "data.root",
  "data.source",
  "data.synthetic.generate",
  "data.test.",
  "data.tfds_data_dir",
  "data.val.",
  "data.worker_count",
  "eval_at_start",
  "eval_every_epochs",
  "keep_checkpoints",
  "log_every_steps",
  "max_steps",
  "model.backbone_init",
  "num_epochs",
  "per_device_batch_size",
)


def as_json(config) -> dict:
  """The config as the JSON object ``config.json`` holds."""
  return json.loads(config.to_json_best_effort())


def config_sha256(config) -> str:
  """sha256 of the config's canonical JSON (sorted keys): equal hashes mean
  equal configs."""
  text = json.dumps(as_json(config), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(node, dict):
    out = {}
    for k, v in node.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: node}


def _matches(key: str, patterns) -> bool:
  """Whether ``key`` is one of ``patterns`` (a pattern ending in '.' is a
  prefix)."""
  return any(
    key == k or (k.endswith(".") and key.startswith(k)) for k in patterns
  )


def differences(saved: dict, current: dict) -> list[tuple[str, Any, Any]]:
  """[(key, saved value, current value)] of the keys a resume may not
  change (missing on one side: ``'<absent>'``)."""
  a, b = _flatten(saved), _flatten(current)
  out = []
  for key in sorted(set(a) | set(b)):
    if _matches(key, RESUMABLE):
      continue
    va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
    if va != vb:
      out.append((key, va, vb))
  return out


def read_saved(workdir: Any) -> dict | None:
  """The workdir's ``config.json`` (None if there is none).

  Raises:
    RunMismatchError: it exists but is not a JSON object.
  """
  path = storage.path(workdir) / CONFIG_JSON
  if not path.exists():
    return None
  try:
    saved = json.loads(path.read_text())
  except ValueError as e:
    raise errors.RunMismatchError(
      f"{path}: not readable JSON ({e}); restore it or use a new --workdir"
    ) from None
  if not isinstance(saved, dict):
    raise errors.RunMismatchError(f"{path}: not a JSON object")
  return saved


def check_resume(workdir: Any, config, allow_change: bool = False) -> list:
  """Refuses a resume whose config differs from the run's in a value that
  changes training.

  Returns:
    The differences that were allowed (``allow_change``), else [].

  Raises:
    RunMismatchError: naming each differing ``config.<key>`` (saved -> now).
  """
  saved = read_saved(workdir)
  if saved is None:
    return []
  diffs = differences(saved, as_json(config))
  if diffs and not allow_change:
    shown = "; ".join(f"config.{k}: {a!r} -> {b!r}" for k, a, b in diffs[:6])
    more = f" and {len(diffs) - 6} more" if len(diffs) > 6 else ""
    raise errors.RunMismatchError(
      f"{storage.path(workdir)} holds a run with another config ({shown}"
      f"{more}); use a new --workdir, or pass --allow_config_change to "
      "continue this run's checkpoints with the new values"
    )
  return diffs


# Values the weights were trained with: an evaluation or demo of the
# checkpoint must use the run's (a dotted key; a prefix ends with '.').
FIXED_BY_CHECKPOINT = (
  "model.image_size",
  "model.backbone",
  "body_model.",
  "normalize.",
)
# Inference choices: the run's unless given on the command line.
FROM_RUN_UNLESS_GIVEN = ("model.dtype", "model.precision")


def find_for_checkpoint(checkpoint: Any):
  """(path, dict) of the ``config.json`` of the training run that
  ``checkpoint`` (a run folder, its ``checkpoints/`` or one step folder)
  belongs to; None for other checkpoints (a conversion)."""
  path = storage.path(checkpoint)
  for folder in (path, path.parent, path.parent.parent):
    candidate = folder / CONFIG_JSON
    if candidate.exists():
      return candidate, read_saved(folder)
  return None


def apply_run_config(config, run: dict, source: Any, overrides: dict) -> None:
  """Sets ``config``'s model-defining values to the training run's.

  Args:
    config: the command's config (changed in place).
    run: the run's ``config.json``.
    source: its path (for messages).
    overrides: the ``--config.*`` values given on the command line
      (``ml_collections.config_flags.get_override_values``).

  Raises:
    RunMismatchError: a command-line value contradicts the run's, naming
      both.
  """
  run_flat = _flatten(run)
  for key, value in run_flat.items():
    fixed = _matches(key, FIXED_BY_CHECKPOINT)
    if not fixed and not _matches(key, FROM_RUN_UNLESS_GIVEN):
      continue
    if key in overrides:
      given = json.loads(json.dumps(overrides[key]))
      if fixed and given != value:
        raise errors.RunMismatchError(
          f"--config.{key}={overrides[key]!r} contradicts the checkpoint, "
          f"trained with {key}={value!r} ({source})"
        )
      continue
    *parents, last = key.split(".")
    target = config
    for part in parents:
      target = target.get(part) if hasattr(target, "get") else None
    if target is None or last not in target:
      continue
    if isinstance(target[last], tuple):
      value = tuple(value)
    target[last] = value
