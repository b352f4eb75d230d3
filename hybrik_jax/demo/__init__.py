"""Inference on images and videos (``demo.py``) and the body-model demo.

Modules (each imports only those above it; only :mod:`.make_figures`
imports :mod:`.run`):

- :mod:`hybrik_jax.demo.inputs`: :class:`DemoError`, person boxes
  (``--bbox``, ``--bbox-file``), image files and video frames.
- :mod:`hybrik_jax.demo.camera`: :class:`Camera`, the default camera, the
  root depth prior and mmhuman3d's test crop.
- :mod:`hybrik_jax.demo.placement`: the rest pelvis, the reprojection fit and
  the camera-frame mesh.
- :mod:`hybrik_jax.demo.predictor`: the checkpoint's input size and the
  jitted :class:`Predictor` (crop -> network -> placed mesh).
- :mod:`hybrik_jax.demo.cam_predictor`: :class:`CamPredictor`, the same
  for the authors' camera models (their crop; the network's camera places
  the mesh, focal 1000 px per 256-px crop).
- :mod:`hybrik_jax.demo.outputs`: the overlay picture (one or several
  people, person colours and labels), OBJ and npz writers, output names.
- :mod:`hybrik_jax.demo.detector`: :class:`PersonDetector`, a YOLOX / YOLOv8
  ONNX person detector run by OpenCV (``--detector``; no weights ship).
- :mod:`hybrik_jax.demo.tracking`: the SORT tracker (stable ids per video).
- :mod:`hybrik_jax.demo.smoothing`: mmhuman3d's temporal filters
  (``--smooth``).
- :mod:`hybrik_jax.demo.bvh`: BVH export and reader (``--save-bvh``).
- :mod:`hybrik_jax.demo.pk`: the original HybrIK demo's ``res.pk``
  (``--save-pk``).
- :mod:`hybrik_jax.demo.video`: the video path (threaded decoding, people
  per frame, tracks, smoothing, exports, overlay video).
- :mod:`hybrik_jax.demo.run`: :func:`run`, the orchestration behind
  ``demo.py`` (image, folder or video).
- :mod:`hybrik_jax.demo.synthetic_video`: a synthetic multi-person video
  with ground truth (tests, docs, bench;
  ``python -m hybrik_jax.demo.synthetic_video``).
- :mod:`hybrik_jax.demo.make_figures`: the README's video-demo pictures
  (``python -m hybrik_jax.demo.make_figures``).
- :mod:`hybrik_jax.demo.body_demo`: SMPL forward -> skeleton -> IK, no
  network (``python -m hybrik_jax.demo.body_demo``).

Camera convention: pinhole, OpenCV axes (x right, y down, z forward),
metres; focal length in pixels (default ``max(H, W)``), principal point at
the image centre ``((W - 1) / 2, (H - 1) / 2)`` (pixel centres are integer
coordinates). Details in :mod:`hybrik_jax.demo.camera` (the authors'
camera models: :mod:`hybrik_jax.demo.cam_predictor`).
"""
