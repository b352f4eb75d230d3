"""TFDS builder: HybrIK datasets as pre-cropped ArrayRecord files.

No downloads. `manual_dir` is the user's mmhuman3d `data/` folder:

  <manual_dir>/preprocessed_datasets/hybrik_h36m_train.npz
  <manual_dir>/preprocessed_datasets/hybrik_mpi_inf_3dhp_train.npz
  <manual_dir>/preprocessed_datasets/hybrik_coco_2017_train.npz
  <manual_dir>/preprocessed_datasets/hybrik_pw3d_test.npz
  <manual_dir>/datasets/<h36m|mpi_inf_3dhp|coco|pw3d>/<image_path>

or, for config 'synthetic', the output folder of
`python -m hybrik_jax.data.synthetic --out DIR` (DIR/synthetic_train.npz,
DIR/synthetic_test.npz, DIR/images/*.jpg).

Build (no TensorFlow needed):

  python -m hybrik_jax.data.build_tfds --config=h36m \
      --manual_dir=/path/to/data --data_dir=/path/to/tfds

(`tfds build hybrik_jax/data/tfds_builder.py --config=h36m --manual_dir=...
--data_dir=... --file_format=array_record` does the same, but the tfds 4.9.10
CLI itself imports TensorFlow at start-up.)

Read: `tfds.data_source('hybrik_data/h36m', data_dir=...)`, or through
`sources.TfdsSource` / `pipeline.DatasetSpec(source='tfds')`.

Each record is one person sample:
  image: [n] uint8, the encoded (JPEG, or PNG if the config says so) crop of
    the frame around the person, large enough for every train augmentation
    (`precrop.crop_box`); when the crop would cover >= 60% of the frame the
    original file bytes are stored unchanged (offset 0).
  crop_offset: [2] int32 (x0, y0) of the crop in the frame, pixels.
  frame_hw: [2] int32 (H, W) of the original frame.
  annotation: [m] uint8, `records.encode` of the per-sample annotation dict
    (`annotations.HybrIKAnnotations`, ORIGINAL frame coordinates; test-mode
    annotations for 'test' splits).
  sample_idx: int64, the sample's index in the HumanData file (= the record
    index: shuffling is disabled).
  image_path: the image path relative to the image root.
"""

import concurrent.futures
import dataclasses
import os

import cv2
import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from hybrik_jax.data import annotations as annotations_lib
from hybrik_jax.data import images as images_lib
from hybrik_jax.data import precrop, records


@dataclasses.dataclass(frozen=True)
class SplitFiles:
  """Files of one split, relative to manual_dir.

  Attributes:
    ann_file: HumanData `.npz`.
    image_root: folder the npz image paths are relative to.
    dataset_name: mmhuman3d dataset name (target branch).
  """

  ann_file: str
  image_root: str
  dataset_name: str


class HybrikDataConfig(tfds.core.BuilderConfig):
  """One dataset: its split files and the crop encoding."""

  def __init__(
    self,
    *,
    splits: dict[str, SplitFiles],
    image_format: str = "jpeg",
    jpeg_quality: int = 95,
    precrop_config: precrop.PrecropConfig = precrop.DEFAULT_CONFIG,
    num_threads: int = 8,
    **kwargs,
  ):
    super().__init__(**kwargs)
    if image_format not in ("jpeg", "png"):
      raise ValueError(f"image_format must be jpeg or png, got {image_format}")
    self.splits = splits
    self.image_format = image_format
    self.jpeg_quality = jpeg_quality
    self.precrop_config = precrop_config
    self.num_threads = num_threads


def _mmhuman3d(name, ann, split="train"):
  return SplitFiles(f"preprocessed_datasets/{ann}", f"datasets/{name}", name)


BUILDER_CONFIGS = [
  HybrikDataConfig(
    name="h36m",
    description="Human3.6M (protocol 2 train)",
    splits={"train": _mmhuman3d("h36m", "hybrik_h36m_train.npz")},
  ),
  HybrikDataConfig(
    name="mpi_inf_3dhp",
    description="MPI-INF-3DHP train",
    splits={
      "train": _mmhuman3d("mpi_inf_3dhp", "hybrik_mpi_inf_3dhp_train.npz")
    },
  ),
  HybrikDataConfig(
    name="coco",
    description="COCO 2017 train keypoints",
    splits={"train": _mmhuman3d("coco", "hybrik_coco_2017_train.npz")},
  ),
  HybrikDataConfig(
    name="pw3d",
    description="3DPW test",
    splits={"test": _mmhuman3d("pw3d", "hybrik_pw3d_test.npz")},
  ),
  HybrikDataConfig(
    name="synthetic",
    description="hybrik_jax.data.synthetic output (train: h36m layout, "
    "test: pw3d layout)",
    splits={
      "train": SplitFiles("synthetic_train.npz", "", "h36m"),
      "test": SplitFiles("synthetic_test.npz", "", "pw3d"),
    },
  ),
]


def _encode(image: np.ndarray, image_format: str, jpeg_quality: int) -> bytes:
  if image_format == "png":
    ok, buf = cv2.imencode(".png", image)
  else:
    ok, buf = cv2.imencode(
      ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    )
  if not ok:
    raise ValueError(f"cv2.imencode failed for a {image.shape} crop")
  return buf.tobytes()


def make_record(
  annotation: dict,
  image_bytes: bytes,
  what: str,
  config: precrop.PrecropConfig,
  image_format: str = "jpeg",
  jpeg_quality: int = 95,
  full_frame_fraction: float = 0.6,
) -> dict:
  """One pre-cropped record from an annotation and its encoded frame.

  Args:
    annotation: per-sample annotation, original frame coordinates.
    image_bytes: the frame file's bytes.
    what: name of the image for error messages.
    config: crop margin bounds.
    image_format: 'jpeg' or 'png' encoding of the crop.
    jpeg_quality: JPEG quality of the crop.
    full_frame_fraction: store the whole original file instead when the crop
      covers at least this fraction of the frame.

  Returns:
    dict with keys image, crop_offset, frame_hw, annotation, sample_idx
    (image_path is added by the builder).
  """
  frame = images_lib.decode_image(image_bytes, what)
  h, w = frame.shape[:2]
  box = precrop.crop_box(annotation["bbox"], (h, w), config)
  crop_area = (box[2] - box[0]) * (box[3] - box[1])
  if crop_area >= full_frame_fraction * h * w:
    # Cropping would save little decode time: keep the original bytes (no
    # second JPEG generation).
    box = (0, 0, w, h)
    data = image_bytes
  else:
    data = _encode(precrop.crop_image(frame, box), image_format, jpeg_quality)
  return {
    "image": np.frombuffer(data, np.uint8),
    "crop_offset": np.asarray(box[:2], np.int32),
    "frame_hw": np.asarray((h, w), np.int32),
    "annotation": np.frombuffer(records.encode(annotation), np.uint8),
    "sample_idx": int(annotation["sample_idx"]),
  }


class HybrikData(tfds.core.GeneratorBasedBuilder):
  """HybrIK training/evaluation samples with pre-cropped person regions."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = BUILDER_CONFIGS
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):  # pylint: disable=no-self-argument
    # tfds 4.9.10's default lookup touches `importlib_resources` (not a
    # dependency here) and fails; the file path is all it needs.
    return epath.Path(__file__)

  def __init__(
    self,
    *,
    image_format: str | None = None,
    jpeg_quality: int | None = None,
    num_threads: int | None = None,
    **kwargs,
  ):
    """Args: encoding/threading overrides of the config, then tfds kwargs."""
    super().__init__(**kwargs)
    cfg = self.builder_config
    self._image_format = image_format or cfg.image_format
    if self._image_format not in ("jpeg", "png"):
      raise ValueError(f"image_format must be jpeg or png, got {image_format}")
    self._jpeg_quality = jpeg_quality or cfg.jpeg_quality
    self._num_threads = num_threads or cfg.num_threads

  def _info(self) -> tfds.core.DatasetInfo:
    byte_vector = lambda: tfds.features.Tensor(  # noqa: E731
      shape=(None,), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
    )
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          "image": byte_vector(),
          "crop_offset": tfds.features.Tensor(shape=(2,), dtype=np.int32),
          "frame_hw": tfds.features.Tensor(shape=(2,), dtype=np.int32),
          "annotation": byte_vector(),
          "sample_idx": tfds.features.Scalar(dtype=np.int64),
          "image_path": tfds.features.Text(),
        }
      ),
      supervised_keys=None,
      # Keep the HumanData order: record j is sample j (the loader samples
      # randomly itself; evaluation reads in file order).
      disable_shuffling=True,
      homepage="https://github.com/open-mmlab/mmhuman3d",
    )

  def _split_generators(self, dl_manager):
    root = dl_manager.manual_dir
    out = {}
    for split, files in self.builder_config.splits.items():
      ann = os.path.join(root, files.ann_file)
      if not os.path.exists(ann):
        raise FileNotFoundError(
          f"config {self.builder_config.name!r}, split {split!r}: "
          f"annotation file {ann} not found (manual_dir={root})"
        )
      out[split] = self._generate_examples(
        ann,
        os.path.join(root, files.image_root),
        files.dataset_name,
        test_mode=(split != "train"),
      )
    return out

  def _generate_examples(self, ann_file, image_root, dataset_name, test_mode):
    cfg = self.builder_config
    anns = annotations_lib.HybrIKAnnotations(
      os.fspath(ann_file), dataset_name, test_mode=test_mode
    )
    crop_cfg = dataclasses.replace(
      cfg.precrop_config, augment=cfg.precrop_config.augment and not test_mode
    )

    def one(j):
      rel = anns.image_path[j]
      path = os.path.join(os.fspath(image_root), rel)
      with open(path, "rb") as f:
        data = f.read()
      rec = make_record(
        anns[j], data, path, crop_cfg, self._image_format, self._jpeg_quality
      )
      rec["image_path"] = rel
      return j, rec

    with concurrent.futures.ThreadPoolExecutor(self._num_threads) as pool:
      chunk = 256
      for start in range(0, len(anns), chunk):
        yield from pool.map(one, range(start, min(start + chunk, len(anns))))


def build(
  config: str, manual_dir: str, data_dir: str, **overrides
) -> HybrikData:
  """Builds one config into `data_dir` (ArrayRecord) and returns the builder.

  Args:
    config: a `BUILDER_CONFIGS` name ('h36m', 'mpi_inf_3dhp', 'coco', 'pw3d',
      'synthetic').
    manual_dir: the data folder (see the module docstring).
    data_dir: tfds output folder.
    **overrides: image_format ('jpeg' | 'png'), jpeg_quality, num_threads.
  """
  names = [c.name for c in BUILDER_CONFIGS]
  if config not in names:
    raise ValueError(f"unknown config {config!r}; have {names}")
  builder = HybrikData(
    config=config, data_dir=data_dir, file_format="array_record", **overrides
  )
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
  )
  return builder
