"""hybrik-jax: HybrIK (CVPR 2021) in JAX/Flax, at numerical parity with mmhuman3d.

Subpackages:
  hybrik_jax.smpl     body model loading, SMPL forward, twist-and-swing IK
  hybrik_jax.model    Flax backbone registry, HybrIK head, full model + predict()
  hybrik_jax.data     HumanData reader, transforms, input pipeline, synthetic data
  hybrik_jax.train    train state, optimiser, losses, train step, checkpoints, loop
  hybrik_jax.eval     metrics and mmhuman3d's evaluation protocol
  hybrik_jax.interop  torch-free .pth reader, weight mapping, converter
  hybrik_jax.demo     image/video inference and the body-model demo
Modules: builders (config -> objects), cli (the command-line convention),
geometry, render, safe_pickle, host_memory.
"""

__version__ = "0.1.0"
