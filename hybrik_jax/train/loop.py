"""The training loop behind ``train.py``.

Data-parallel over every local device (and every host, see README), orbax
checkpoints with exact resume, NaN/inf guard, progress bar, TensorBoard
scalars, periodic validation and a curve plot at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from hybrik_jax import builders, errors, storage
from hybrik_jax.train import (
  checkpointing,
  preemption,
  run_config,
  run_logging,
  workdir_lock,
)
from hybrik_jax.train import state as train_state_lib
from hybrik_jax.train import step as train_step_lib

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
  """Raised when a step produced a NaN/inf loss, gradient or update."""


def train_and_evaluate(
  config, workdir: Any, allow_config_change: bool = False
) -> dict[str, Any]:
  """Trains per ``config`` in ``workdir``; resumes if checkpoints exist.

  A workdir is used by one run at a time (:mod:`.workdir_lock`), and a
  resume with a config that differs from the run's ``config.json`` in a
  value that changes training is refused unless ``allow_config_change``
  (:mod:`.run_config`).

  ``workdir`` is a local folder or a remote one (``gs://bucket/run``): every
  file of the run (checkpoints, ``config.json``, ``history.jsonl``,
  TensorBoard events, curves, ``summary.json``) is written through
  :mod:`hybrik_jax.storage`.

  Returns a summary dict (steps, last validation metrics, wall time).
  """
  workdir = storage.path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  lock = workdir_lock.WorkdirLock(workdir, say=_say)
  if jax.process_index() == 0:
    lock.acquire()
  try:
    return _train_and_evaluate(config, workdir, allow_config_change)
  finally:
    lock.release()


def _train_and_evaluate(config, workdir, allow_config_change):
  t_start = time.time()
  is_main = jax.process_index() == 0
  if builders.is_cam_model(config) and config.eval_every_epochs > 0:
    raise errors.ConfigError(
      f"config.eval_every_epochs={config.eval_every_epochs}: validation of "
      f"the authors' camera models (config.model.arch="
      f"{builders.model_arch(config)!r}) is not implemented (their 3DPW/H36M "
      "protocol differs from mmhuman3d's); set it to 0"
    )
  if config.per_device_batch_size < 1:
    raise errors.ConfigError(
      f"config.per_device_batch_size={config.per_device_batch_size}: must be "
      "a positive number of images per device"
    )

  mesh = train_step_lib.make_mesh(jax.devices())
  global_batch = config.per_device_batch_size * jax.device_count()

  seed = int(config.seed)
  train_loader, steps_per_epoch = builders.make_train_loader(
    config, global_batch, seed
  )
  total_steps = steps_per_epoch * config.num_epochs
  if config.max_steps > 0:
    total_steps = min(total_steps, config.max_steps)

  tx, schedule = builders.make_optimizer(config, steps_per_epoch)
  rng = jax.random.PRNGKey(seed)
  init_rng, state_rng = jax.random.split(rng)
  model = builders.build_model(config)
  state = train_state_lib.TrainState.create(
    builders.initial_variables(config, model, init_rng), tx, state_rng
  )

  ckpt = checkpointing.Checkpointer(
    workdir, keep=config.keep_checkpoints, async_save=config.async_checkpointing
  )
  state = train_step_lib.replicate(state, mesh)
  allowed = []
  if ckpt.all_steps():
    allowed = run_config.check_resume(workdir, config, allow_config_change)
  restored = ckpt.restore_latest(checkpointing.abstract_like(state))
  resumed_from = resumed_digest = None
  if restored is not None:
    state, iter_state, resumed_from = restored
    try:
      train_loader.set_state(iter_state)
    except ValueError as e:
      raise errors.RunMismatchError(
        f"checkpoint step {resumed_from} in {ckpt.directory} was written by "
        f"another input stream ({e}); keep the global batch (per-device "
        "batch x devices) and the training data of the run, or use a new "
        "--workdir"
      ) from None
    if allowed:
      _say(
        "continuing with config changes: "
        + "; ".join(f"config.{k}: {a!r} -> {b!r}" for k, a, b in allowed)
      )
    resumed_digest = params_digest(state.params)
    _say(f"resumed from step {resumed_from} ({ckpt.directory})")
  start_step = int(jax.device_get(state.step))

  step_fn = train_step_lib.make_train_step(
    model, mesh, builders.loss_weights(config), builders.train_task(config)
  )
  writer = run_logging.MetricWriter(workdir, enabled=is_main)
  val_fn = (
    _make_validation(config, model) if config.eval_every_epochs > 0 else None
  )
  val_metrics: dict[str, float] = {}
  if is_main:
    (workdir / run_config.CONFIG_JSON).write_text(
      config.to_json_best_effort(indent=2)
    )

  if val_fn is not None and start_step == 0 and config.eval_at_start:
    val_metrics = val_fn(state)
    writer.write(0, {f"val/{k}": v for k, v in val_metrics.items()})
    _say(
      "step 0 (before training): "
      + ", ".join(f"{k} {v:.2f}" for k, v in val_metrics.items())
    )
  pbar = tqdm(
    total=total_steps,
    initial=start_step,
    disable=not is_main,
    desc="train",
    unit="step",
    dynamic_ncols=True,
  )
  window_t, window_n = time.time(), 0
  pending = None  # metrics of the previous step, checked one step late
  step = start_step
  preempted = False
  watch = preemption.Watch()
  try:
    watch.install()
    while step < total_steps:
      batch = train_step_lib.shard_batch(next(train_loader), mesh)
      state, metrics = step_fn(state, batch)
      step += 1
      window_n += 1
      if pending is not None:
        _check_finite(*pending)
      pending = (step, metrics)
      epoch_end = step % steps_per_epoch == 0
      if step % config.log_every_steps == 0 or epoch_end or step == total_steps:
        _check_finite(step, metrics)
        m = jax.device_get(metrics)
        dt = time.time() - window_t
        ips = window_n * global_batch / max(dt, 1e-9)
        window_t, window_n = time.time(), 0
        lr = float(schedule(step - 1))
        scalars = {
          f"train/{k}": float(v) for k, v in m.items() if k != "finite"
        }
        scalars.update({"train/lr": lr, "train/images_per_s": ips})
        writer.write(step, scalars)
        pbar.set_postfix(
          loss=f"{float(m['loss']):.4f}", lr=f"{lr:.1e}", img_s=f"{ips:.1f}"
        )
      pbar.update(1)
      do_eval = val_fn is not None and (
        (
          epoch_end
          and (step // steps_per_epoch) % config.eval_every_epochs == 0
        )
        or step == total_steps
      )
      if do_eval:
        val_metrics = val_fn(state)
        writer.write(step, {f"val/{k}": v for k, v in val_metrics.items()})
        tqdm.write(
          f"step {step}: "
          + ", ".join(f"{k} {v:.2f}" for k, v in val_metrics.items())
        )
      # Asked on every process at every step (a sync point when multi-host).
      preempted = step < total_steps and watch.should_stop(step)
      if (
        step % config.checkpoint_every_steps == 0
        or epoch_end
        or step == total_steps
        or preempted
      ):
        _check_finite(step, metrics)
        best = (
          {checkpointing.BEST_METRIC: val_metrics["PA-MPJPE"]}
          if do_eval and "PA-MPJPE" in val_metrics
          else None
        )
        ckpt.save(step, state, train_loader.get_state(), metrics=best)
      if preempted:
        break
  finally:
    watch.uninstall()
    pbar.close()
    ckpt.close()
    writer.close()
    train_loader.close()
  if preempted:
    _say(
      f"preempted: stopped after step {step} and wrote its checkpoint to "
      f"{ckpt.directory}; run the same command again to resume"
    )
  elif is_main:
    run_logging.plot_curves(workdir)
  summary = {
    "steps": step,
    "steps_per_epoch": steps_per_epoch,
    "global_batch": global_batch,
    "val": val_metrics,
    "resumed_from": resumed_from,
    "preempted": preempted,
    # The parameters as restored: equal to the saving run's params_sha256 at
    # that step, whatever the device count either ran on.
    "resumed_params_sha256": resumed_digest,
    "params_sha256": params_digest(state.params),
    "wall_s": time.time() - t_start,
  }
  if is_main:
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
  return summary


def _say(msg: str) -> None:
  """A message for the person running the job (process 0 only)."""
  if jax.process_index() == 0:
    tqdm.write(msg)
  log.info(msg)


def params_digest(params) -> str:
  """sha256 over every parameter's bytes (in tree order): equal digests mean
  bit-identical parameters."""
  h = hashlib.sha256()
  for leaf in jax.tree_util.tree_leaves(jax.device_get(params)):
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


def _check_finite(step: int, metrics) -> None:
  if float(jax.device_get(metrics["finite"])) < 1.0:
    raise NonFiniteLossError(
      f"non-finite loss, gradient or update at step {step} "
      f"(loss={float(jax.device_get(metrics['loss']))}): the update was not "
      "applied and training stopped; the last checkpoint is the last good "
      "state"
    )


def _make_validation(config, model):
  """Returns ``fn(state) -> {'MPJPE', 'PA-MPJPE'}`` on ``config.data.val``."""
  from hybrik_jax.eval import protocol

  val = config.data.val

  def run(state) -> dict[str, float]:
    variables = jax.device_get(state.variables)
    return protocol.evaluate_dataset(
      variables, builders.make_eval_data(config, val), model=model
    )["metrics"]

  return run
