"""One of two evaluation processes (see tests/test_multihost.py).

  two_process_eval.py PORT PROCESS_ID CHECKPOINT DATA_ROOT OUT_JSON

Joins a 2-process JAX cluster on localhost, evaluates CHECKPOINT on the
synthetic test split with its host's shard of every batch, and (process 0)
writes the gathered metrics and sample order to OUT_JSON.
"""

import json
import sys

import jax

port, pid, checkpoint, data_root, out = sys.argv[1:6]
jax.distributed.initialize(
  coordinator_address=f"localhost:{port}", num_processes=2, process_id=int(pid)
)

from helpers import eval_config  # noqa: E402  (tests/ is on sys.path)

from hybrik_jax import builders  # noqa: E402
from hybrik_jax.eval import protocol  # noqa: E402
from hybrik_jax.train import checkpointing  # noqa: E402

config = eval_config(data_root)
test = config.data.test
variables = checkpointing.load_inference_variables(checkpoint)
result = protocol.evaluate_dataset(
  variables,
  builders.make_eval_data(config, test),
  model=builders.build_model(config),
  progress=False,
)
if jax.process_index() == 0:
  with open(out, "w") as f:
    json.dump(
      {
        "metrics": result["metrics"],
        "sample_idx": result["per_sample"]["sample_idx"].tolist(),
      },
      f,
    )
