"""Train HybrIK.

  python train.py --config configs/mixed.py --workdir runs/mixed
  python train.py --config configs/synthetic.py --workdir runs/synthetic

Override any config value: ``--config.optimizer.lr=5e-4``. A run resumes
automatically from the newest checkpoint in ``--workdir``. Multi-host (TPU pod
slices, multi-node GPU): start the same command on every host with
``--distributed`` (calls ``jax.distributed.initialize()``).
"""

from __future__ import annotations

import logging
import os

from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file (a Python file with get_config()).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.")
_CACHE = flags.DEFINE_string(
    "jax_cache_dir", os.path.expanduser("~/.cache/hybrik_jax/xla"),
    "Persistent compilation cache ('' disables).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "Call jax.distributed.initialize() (multi-host TPU/GPU launches).")


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  logging.basicConfig(level=logging.INFO,
                      format="%(asctime)s %(levelname)s %(message)s")
  # orbax/absl INFO lines drown the progress bar; keep warnings.
  absl_logging.set_verbosity(absl_logging.WARNING)
  if _CACHE.value:
    # Persistent XLA compilation cache: a rerun / resume skips compilation.
    jax.config.update("jax_compilation_cache_dir", _CACHE.value)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  from hybrik_jax.train import loop as trainer  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    print(f"JAX {jax.__version__}: {jax.process_count()} process(es), "
          f"{jax.local_device_count()} local / {jax.device_count()} global "
          f"{jax.devices()[0].platform} device(s)", flush=True)
  try:
    summary = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except trainer.NonFiniteLossError as e:
    raise SystemExit(f"error: {e}") from None
  if jax.process_index() == 0:
    val = ", ".join(f"{k} {v:.1f} mm" for k, v in summary["val"].items())
    print(f"done: {summary['steps']} steps in {summary['wall_s']:.0f} s"
          + (f"; validation {val}" if val else ""), flush=True)


if __name__ == "__main__":
  from hybrik_jax import host_memory  # pylint: disable=g-import-not-at-top
  host_memory.reexec_with_huge_pages()  # see hybrik_jax/host_memory.py
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
