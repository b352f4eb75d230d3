"""Train HybrIK.

  python train.py --config configs/mixed.py --workdir runs/mixed
  python train.py --config configs/synthetic.py --workdir runs/synthetic

Override any config value: ``--config.optimizer.lr=5e-4``. A run resumes
automatically from the newest checkpoint in ``--workdir``. Multi-host (TPU pod
slices, multi-node GPU): start the same command on every host with
``--distributed`` (calls ``jax.distributed.initialize()``). Flags follow
:mod:`hybrik_jax.cli` (``--jax-cache-dir`` == ``--jax_cache_dir``).
"""

from __future__ import annotations

import logging
import os
import sys

from absl import flags

from hybrik_jax import cli


def define_flags(fv: flags.FlagValues) -> None:
  cli.define_config_file(
    fv, "Training config file (a Python file with get_config())."
  )
  flags.DEFINE_string(
    "workdir", None, "Run directory (created; resumed).", flag_values=fv
  )
  flags.DEFINE_string(
    "jax_cache_dir",
    os.path.expanduser("~/.cache/hybrik_jax/xla"),
    "Persistent XLA compilation cache ('' disables).",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "distributed",
    False,
    "Call jax.distributed.initialize() (multi-host TPU/GPU launches); the "
    "cluster is auto-detected (TPU VMs, SLURM, Open MPI) unless the three "
    "flags below are given.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "coordinator_address",
    None,
    "With --distributed: host:port of process 0 (plain multi-node boxes).",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "num_processes",
    None,
    "With --distributed: number of processes.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "process_id",
    None,
    "With --distributed: this process's index.",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "allow_config_change",
    False,
    "Resume a workdir's checkpoints although the config differs from the "
    "run's config.json in values that change training (refused otherwise, "
    "naming the values).",
    flag_values=fv,
  )
  flags.mark_flags_as_required(["config", "workdir"], flag_values=fv)


def distributed_kwargs(fv: flags.FlagValues) -> dict:
  """``jax.distributed.initialize`` arguments: all three explicit, or none
  (auto-detection)."""
  given = {
    "coordinator_address": fv.coordinator_address,
    "num_processes": fv.num_processes,
    "process_id": fv.process_id,
  }
  set_ = {k: v for k, v in given.items() if v is not None}
  if set_ and not fv.distributed:
    raise cli.UsageError(f"--{'/--'.join(set_)} need --distributed")
  if set_ and len(set_) != len(given):
    missing = sorted(set(given) - set(set_))
    raise cli.UsageError(
      "give --coordinator_address, --num_processes and --process_id "
      f"together (missing --{', --'.join(missing)})"
    )
  return set_


def main(argv=None) -> int:
  fv, _ = cli.parse(define_flags, argv, "python train.py", __doc__, xla=True)
  import jax
  from absl import logging as absl_logging

  init_kwargs = distributed_kwargs(fv)
  if fv.distributed:
    jax.distributed.initialize(**init_kwargs)
  logging.basicConfig(
    level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
  )
  # orbax/absl INFO lines drown the progress bar; keep warnings.
  absl_logging.set_verbosity(absl_logging.WARNING)
  if fv.jax_cache_dir:
    # Persistent XLA compilation cache: a rerun / resume skips compilation.
    jax.config.update("jax_compilation_cache_dir", fv.jax_cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  from hybrik_jax.train import loop

  if jax.process_index() == 0:
    print(
      f"JAX {jax.__version__}: {jax.process_count()} process(es), "
      f"{jax.local_device_count()} local / {jax.device_count()} global "
      f"{jax.devices()[0].platform} device(s)",
      flush=True,
    )
  try:
    summary = loop.train_and_evaluate(
      fv.config, fv.workdir, allow_config_change=fv.allow_config_change
    )
  except loop.NonFiniteLossError as e:
    # The run failed (not its input): exit 1. Input errors exit 2 (cli.run).
    print(f"error: {e}", file=sys.stderr, flush=True)
    return 1
  if jax.process_index() == 0:
    val = ", ".join(f"{k} {v:.1f} mm" for k, v in summary["val"].items())
    verb = "preempted after" if summary["preempted"] else "done:"
    print(
      f"{verb} {summary['steps']} steps in {summary['wall_s']:.0f} s"
      + (f"; validation {val}" if val else ""),
      flush=True,
    )
  return 0


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
