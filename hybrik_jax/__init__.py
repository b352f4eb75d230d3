"""hybrik-jax: HybrIK (CVPR 2021) in JAX/Flax, at numerical parity with mmhuman3d.

Subpackages:
  hybrik_jax.smpl   body model loading, SMPL forward, twist-and-swing IK
  hybrik_jax.model  Flax ResNet34 backbone, HybrIK head, full model + predict()
  hybrik_jax.data   HumanData reader, transforms, input pipeline, synthetic data
"""

__version__ = "0.1.0"
