"""The mixed recipe's model on the embedded synthetic dataset (2-core CPU).

Same network, losses, optimiser, transforms and pipeline as
``configs/mixed.py``; only the data (rendered synthetic bodies, generated on
first use), the input size (128 px, so a 2-core CPU trains in minutes), the
batch and the schedule differ. This is what the README's main command runs:

  python train.py --config configs/synthetic.py --workdir runs/synthetic
"""

import ml_collections

from configs import mixed


def get_config():
  c = mixed.get_config()
  c.model.image_size = 128
  c.model.backbone_init = ""  # no ImageNet weights on a fresh machine

  c.data.root = "data/synthetic"
  # Rendered into data.root on first use (python -m hybrik_jax.data.synthetic
  # writes the same files).
  c.data.synthetic = ml_collections.ConfigDict(
    {"generate": True, "num_train": 400, "num_test": 64, "seed": 0}
  )
  c.data.worker_count = 0
  # Train split laid out like hybrik_h36m_train.npz (mm), test split like
  # hybrik_pw3d_test.npz (metres): the same code paths as the real files.
  c.data.train = [
    mixed.dataset(
      "synthetic", "synthetic_train.npz", ".", weight=1.0, dataset_name="h36m"
    )
  ]
  c.data.val = mixed.dataset(
    "synthetic", "synthetic_test.npz", ".", dataset_name="pw3d"
  )
  c.data.test = mixed.dataset(
    "synthetic", "synthetic_test.npz", ".", dataset_name="pw3d"
  )
  c.data.eval_batch_size = 16
  # The synthetic body model shipped in the package (hybrik_jax/assets).
  c.body_model.path = "package://SMPL_NEUTRAL.pkl.gz"
  c.body_model.extra_regressor = "package://J_regressor_h36m.npy"
  c.body_model.mean_beta = "package://h36m_mean_beta.npy"

  c.per_device_batch_size = 8
  c.num_epochs = 6
  c.lr_schedule.decay_epochs = (5,)
  c.log_every_steps = 10
  c.eval_every_epochs = 2
  c.eval_at_start = True  # shows the drop from the untrained model
  c.checkpoint_every_steps = 100
  return c
