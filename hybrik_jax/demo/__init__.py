"""Inference on images and videos (``demo.py``) and the body-model demo.

Modules (each imports only those above it; none imports :mod:`.run`):

- :mod:`hybrik_jax.demo.inputs`: :class:`DemoError`, person boxes
  (``--bbox``, ``--bbox-file``), image files and video frames.
- :mod:`hybrik_jax.demo.camera`: :class:`Camera`, the default camera, the
  root depth prior and mmhuman3d's test crop.
- :mod:`hybrik_jax.demo.placement`: the rest pelvis, the reprojection fit and
  the camera-frame mesh.
- :mod:`hybrik_jax.demo.predictor`: the checkpoint's input size and the
  jitted :class:`Predictor` (crop -> network -> placed mesh).
- :mod:`hybrik_jax.demo.outputs`: the overlay picture, OBJ and npz writers.
- :mod:`hybrik_jax.demo.run`: :func:`run`, the orchestration behind
  ``demo.py`` (image, folder or video).
- :mod:`hybrik_jax.demo.body_demo`: SMPL forward -> skeleton -> IK, no
  network (``python -m hybrik_jax.demo.body_demo``).

Camera convention: pinhole, OpenCV axes (x right, y down, z forward),
metres; focal length in pixels (default ``max(H, W)``), principal point at
the image centre ``((W - 1) / 2, (H - 1) / 2)`` (pixel centres are integer
coordinates). Details in :mod:`hybrik_jax.demo.camera`.
"""
