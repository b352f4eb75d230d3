"""The original authors' HRNet-W48 camera-model recipe (Jeff-sjtu/HybrIK).

Values of their ``configs/256x192_adam_lr1e-3-hrw48_cam_2x_w_pw3d_3dhp.yaml``
and ``scripts/train_smpl_cam.py`` (the model zoo's "HRNet-W48 with
predicted camera, trained with 3DPW"), on this project's data layout
(mmhuman3d's HumanData files, see configs/mixed.py). What differs from the
mmhuman3d recipe (configs/mixed.py):

* model: ``HRNetSMPLCam`` (``model.arch = 'hrnet_w48_cam'``, backbone
  ``hrnet_w48``): 256 x 256 input, 64 x 64 x 64 heatmaps (fixed by the
  network: input / 4, 64 depth bins), predicted camera scale, depth in
  units of ``bbox_3d_shape`` = 2200 mm (the model's depth factor 2.2 m).
* loss: their ``LaplaceLossDimSMPLCam`` (hybrik_jax/train/cam_losses.py):
  beta 1, theta 0.01 (on rotation matrices), twist 1, uvd 1 (the Laplace
  negative log-likelihood with the predicted sigma), plus the camera-scale
  MSE (weight 1). Their PHI_REG_WEIGHT 1e-4 is never used by that loss.
* targets: their ``SimpleTransform3DSMPLCam`` (hybrik_jax/data/
  cam_targets.py): camera scale/offset targets, no uvd range check.
* augmentation: no DPG (their transform gets ``add_dpg=False``), scale
  factor 0.3, rotation 30 deg (w.p. 0.6, clip 60), an occluder in every
  image (area 0-0.3 of the box, h/w 0.5-2; one try here, they retry until
  one fits the image), flip w.p. 0.25 (``random.random() > 0.75``), colour
  x U(0.8, 1.2) per channel clipped to [0, 255], no half-body crops.
  Normalisation: 0-1 RGB minus (0.406, 0.457, 0.480), divided by (0.225,
  0.224, 0.229) (ImageNet's statistics in BGR order, as they apply them).
* optimiser: Adam 1e-3 (torch defaults), each parameter's gradient clipped
  to norm 5 on its own, x0.1 at their epochs 60 and 80 of 200, 36 images
  per GPU on 4 GPUs (global batch 144).
* epochs: theirs are 2 x the largest training set (``MixDataset2Cam``),
  this project's mixed loader's are 1 x, so the schedule is given in ours:
  decay at 120 and 160, 400 epochs (the same optimiser steps).
* data: H36M 0.3 / COCO 0.4 / MPI-INF-3DHP 0.1 / 3DPW 0.2. mmhuman3d ships
  no ``hybrik_pw3d_train.npz``: write the 3DPW training set as a HumanData
  file of that name (or remove the entry: the "without 3DPW" model).
  COCO / MPI-INF-3DHP samples keep mmhuman3d's targets and get no camera
  target (the camera losses skip them).
* initialisation: they start the backbone from the COCO keypoint HRNet
  ``pose_hrnet_w48_256x192.pth``; reading it is not implemented, so the
  network starts from random weights (``model.backbone_init = ''``).
* validation: the authors' 3DPW/H36M protocol is not implemented;
  ``eval_every_epochs`` must stay 0.

  python train.py --config configs/hrnet_w48_cam.py --workdir runs/hrnet_cam \\
      --config.data.root=/path/to/mmhuman3d/data

The synthetic variant (``:synthetic``): the embedded synthetic dataset and
body model (generated on first use into ``data/synthetic``), 128-px input,
4 images per device, a short schedule -- the recipe end to end on a CPU:

  python train.py --config configs/hrnet_w48_cam.py:synthetic \\
      --workdir runs/hrnet_cam_synthetic
"""

import ml_collections

from configs import mixed

# 0-1 RGB (x - mean) / std with the authors' constants, in 0-255 units.
_MEAN = tuple(255.0 * m for m in (0.406, 0.457, 0.480))
_STD = tuple(255.0 * s for s in (0.225, 0.224, 0.229))


def get_config(variant: str | None = None):
  """The recipe; ``variant='synthetic'`` (``--config FILE:synthetic``) for
  the synthetic dataset at a small size."""
  if variant not in (None, "", "synthetic"):
    raise ValueError(f"unknown variant {variant!r}; use ':synthetic' or none")
  c = mixed.get_config()
  c.model = ml_collections.ConfigDict(
    {
      # hybrik_jax/model/hybrik_cam.py: 'hrnet_w48_cam' | 'resnet34_cam'.
      "arch": "hrnet_w48_cam",
      "backbone": "hrnet_w48",
      "image_size": 256,
      # mm (MODEL.BBOX_3D_SHAPE): depth/xyz targets and the model's 2.2 m.
      "bbox_3d_shape": 2200.0,
      "dtype": "float32",
      "precision": "default",
      "backbone_init": "",
    }
  )
  c.loss = ml_collections.ConfigDict({"type": "laplace"})
  c.loss_weights = ml_collections.ConfigDict(
    {"beta": 1.0, "theta": 0.01, "twist": 1.0, "uvd": 1.0}
  )
  c.augment = ml_collections.ConfigDict(
    {
      "dpg_prob": 0.0,
      "rot_factor": 30.0,
      "rot_prob": 0.6,
      "scale_factor": 0.3,
      "occlusion_prob": 1.0,
      "occlusion_area": (0.0, 0.3),
      "occlusion_ratio": (0.5, 2.0),
      "flip_prob": 0.25,
      "noise_factor": 0.2,
      "noise_clip": True,
    }
  )
  c.normalize = ml_collections.ConfigDict(
    {"mean": _MEAN, "std": _STD, "to_rgb": True}
  )
  ann = "preprocessed_datasets/"
  c.data.train = [
    mixed.dataset("h36m", ann + "hybrik_h36m_train.npz", "datasets/h36m", 0.3),
    mixed.dataset(
      "coco", ann + "hybrik_coco_2017_train.npz", "datasets/coco", 0.4
    ),
    mixed.dataset(
      "mpi_inf_3dhp",
      ann + "hybrik_mpi_inf_3dhp_train.npz",
      "datasets/mpi_inf_3dhp",
      0.1,
    ),
    mixed.dataset(
      "pw3d_train",
      ann + "hybrik_pw3d_train.npz",
      "datasets/pw3d",
      0.2,
      dataset_name="pw3d",
    ),
  ]
  c.per_device_batch_size = 36
  c.num_epochs = 400  # = their 200 (module docstring)
  c.optimizer.clip_norm_per_param = 5.0
  c.lr_schedule.decay_epochs = (120, 160)  # = their 60, 80
  c.eval_every_epochs = 0  # not implemented for these models
  if variant == "synthetic":
    _synthetic(c)
  return c


def _synthetic(c) -> None:
  """The synthetic dataset and body model, 128 px, a short schedule."""
  c.model.image_size = 128
  c.data.root = "data/synthetic"
  c.data.synthetic = ml_collections.ConfigDict(
    {"generate": True, "num_train": 400, "num_test": 64, "seed": 0}
  )
  c.data.worker_count = 0
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
  c.body_model.path = "package://SMPL_NEUTRAL.pkl.gz"
  c.body_model.extra_regressor = "package://J_regressor_h36m.npy"
  c.body_model.mean_beta = "package://h36m_mean_beta.npy"
  c.per_device_batch_size = 4
  c.num_epochs = 2
  c.lr_schedule.decay_epochs = (1,)
  c.log_every_steps = 10
  c.checkpoint_every_steps = 100
