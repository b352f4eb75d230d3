"""mmhuman3d `configs/hybrik/resnet34_hybrik_mixed.py`, every value.

Train: H36M 0.4 / MPI-INF-3DHP 0.1 / COCO 0.5 (MixedDataset partition; epoch
= the largest subset's length), Adam 1e-3 (betas 0.9/0.999, eps 1e-8, no
weight decay, no clipping), lr x0.1 at epochs 180 and 240, 400 epochs, 32
images per device, loss weights beta 1 / theta 0.01 / twist 0.2 / uvd 1.
Test/val: 3DPW (`hybrik_pw3d_test.npz`), metrics MPJPE and PA-MPJPE.

Paths follow mmhuman3d's layout under `data/` (override with
`--config.data.root=/path/to/data`):

  data/preprocessed_datasets/hybrik_{h36m,mpi_inf_3dhp,coco_2017}_train.npz
  data/preprocessed_datasets/hybrik_pw3d_test.npz
  data/datasets/{h36m,mpi_inf_3dhp,coco,pw3d}/...        (images)
  data/body_models/smpl/SMPL_NEUTRAL.pkl, J_regressor_h36m.npy,
  data/body_models/h36m_mean_beta.npy
  data/pretrained/resnet34-b627a593.pth                  (torchvision ImageNet)

Run: python train.py --config configs/mixed.py --workdir runs/mixed
"""

import ml_collections


def dataset(name, ann_file, image_root, weight=None, dataset_name=None):
  """One dataset entry; paths are relative to ``config.data.root``.

  ``weight`` is the share of a training dataset in the mix (training entries
  only). ``dataset_name`` selects mmhuman3d's per-dataset behaviour (target
  branch, evaluation protocol): 'h36m', 'mpi_inf_3dhp', 'coco' or 'pw3d'.
  """
  entry = {
    "name": name,
    "ann_file": ann_file,
    "image_root": image_root,
    "dataset_name": dataset_name or name,
  }
  if weight is not None:
    entry["weight"] = weight
  return ml_collections.ConfigDict(entry)


def get_config():
  """The mmhuman3d recipe."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.model = ml_collections.ConfigDict(
    {
      # Registered backbone (hybrik_jax/model/backbones.py).
      "backbone": "resnet34",
      "image_size": 256,
      "dropout": 0.5,
      # Compute dtype of backbone+head convolutions: 'float32' or 'bfloat16'
      # (parameters, IK and SMPL always stay float32).
      "dtype": "float32",
      # Matmul/convolution precision: 'default' (the backend's: float32 on
      # CPU, bfloat16 passes on TPU and on GPUs with TF32), 'high' or
      # 'highest' (true float32 on TPU/GPU, for parity with PyTorch).
      "precision": "default",
      # torchvision ImageNet ResNet-34 state_dict (resnet34-b627a593.pth) used
      # to initialise the backbone (mmhuman3d: torchvision://resnet34).
      # Empty string = random init.
      "backbone_init": "pretrained/resnet34-b627a593.pth",
    }
  )

  c.body_model = ml_collections.ConfigDict(
    {
      "path": "body_models/smpl",  # relative to data.root unless absolute
      "gender": "neutral",
      "extra_regressor": "body_models/J_regressor_h36m.npy",
      "mean_beta": "body_models/h36m_mean_beta.npy",
    }
  )

  c.data = ml_collections.ConfigDict()
  c.data.root = "data"
  # 'npz': HumanData npz + image files; 'tfds': pre-cropped ArrayRecords
  # built by `python -m hybrik_jax.data.build_tfds` into data.tfds_data_dir.
  c.data.source = "npz"
  c.data.tfds_data_dir = ""
  c.data.eval_batch_size = 32
  # Samples whose values are unusable (non-finite keypoints / SMPL / twist /
  # root / intrinsics, a non-finite or empty box, depth_factor <= 0; see
  # hybrik_jax/data/sample_checks.py). "fail": stop with an error naming the
  # file, the key, the reason and the first sample indices. "skip": drop
  # those samples with a one-line message giving the count and the first
  # indices (evaluation reports them as skipped_samples). mmhuman3d has no
  # such check: a bad sample there turns the loss or the metrics into NaN.
  c.data.bad_samples = "fail"
  ann = "preprocessed_datasets/"
  c.data.train = [
    dataset("h36m", ann + "hybrik_h36m_train.npz", "datasets/h36m", 0.4),
    dataset(
      "mpi_inf_3dhp",
      ann + "hybrik_mpi_inf_3dhp_train.npz",
      "datasets/mpi_inf_3dhp",
      0.1,
    ),
    dataset("coco", ann + "hybrik_coco_2017_train.npz", "datasets/coco", 0.5),
  ]
  c.data.val = dataset("pw3d", ann + "hybrik_pw3d_test.npz", "datasets/pw3d")
  c.data.test = dataset("pw3d", ann + "hybrik_pw3d_test.npz", "datasets/pw3d")
  # grain worker processes per host, for training and evaluation
  # (mmhuman3d: workers_per_gpu=1).
  c.data.worker_count = 1
  # mmhuman3d's h36m_idxs / hybrik29_idxs / hp3d_idxs / flip_pairs are
  # properties of the HumanData-190 layout, not settings: they live in
  # hybrik_jax/data/conventions.py. So does the 1.25 box scale of box2cs.

  c.augment = ml_collections.ConfigDict(
    {
      "dpg_prob": 0.9,
      "rot_factor": 30.0,
      "rot_prob": 0.6,
      "scale_factor": 0.25,
      "occlusion_prob": 0.9,
      "flip_prob": 0.5,
      "noise_factor": 0.4,
    }
  )
  c.normalize = ml_collections.ConfigDict(
    {
      "mean": (123.675, 116.28, 103.53),
      "std": (58.395, 57.12, 57.375),
      "to_rgb": True,
    }
  )

  c.per_device_batch_size = 32
  c.num_epochs = 400
  c.optimizer = ml_collections.ConfigDict(
    {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
  )
  c.lr_schedule = ml_collections.ConfigDict(
    {"decay_epochs": (180, 240), "decay_factor": 0.1}
  )
  c.loss_weights = ml_collections.ConfigDict(
    {"beta": 1.0, "theta": 0.01, "twist": 0.2, "uvd": 1.0}
  )

  c.log_every_steps = 50
  c.eval_every_epochs = 1  # <= 0 disables validation
  c.eval_at_start = False  # validate the initial model too (step 0)
  c.checkpoint_every_steps = 1000  # and at every epoch end
  c.keep_checkpoints = 3
  c.async_checkpointing = True
  c.max_steps = -1  # > 0 stops early (smoke tests)
  return c
