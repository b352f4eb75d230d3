"""Random-access sample sources: (annotation, BGR frame) by index.

Two kinds, same interface (`len(source)`, `source[j] -> (annotation, image)`):

* `NpzSource`: reads mmhuman3d's preprocessed HumanData `.npz` and the image
  files straight from disk (no build step; small sets and evaluation).
* `TfdsSource`: reads a pre-cropped ArrayRecord dataset written by
  `tfds_builder.py` through `tfds.data_source` (random access, no TensorFlow)
  and returns the crop pasted into a "virtual full frame" of the original size
  (`precrop.virtual_frame`), with annotations in original frame coordinates.

Images are BGR uint8 [H, W, 3] (mmcv `imfrombytes(flag='color')` order),
decoded by `hybrik_jax.data.images`.
`NpzSource` checks the values of every sample when it first reads the file
(`sample_checks`) and fails on bad samples or skips them, per its
`bad_samples` policy.
Both sources open their files lazily and drop open handles when pickled, so
they can be shipped to grain worker processes cheaply.
"""

import os

import numpy as np

from hybrik_jax.data import annotations as annotations_lib
from hybrik_jax.data import human_data as human_data_lib
from hybrik_jax.data import images as images_lib
from hybrik_jax.data import precrop, records, sample_checks

# Dataset names whose target branch the transforms know.
MMHUMAN3D_DATASETS = ("h36m", "mpi_inf_3dhp", "coco", "pw3d")


class NpzSource:
  """HumanData `.npz` + image folder.

  Attributes:
    name: dataset name (for error messages).
    ann_file: path of the HumanData `.npz`.
    image_root: folder that the npz `image_path` entries are relative to
      (mmhuman3d: `data/datasets/<dataset_name>`).
    dataset_name: mmhuman3d dataset name selecting the target branch
      ('h36m', 'mpi_inf_3dhp', 'coco', 'pw3d'); default: `name` if it is one
      of those, else the HumanData file's `config` entry (the synthetic
      files say 'h36m' / 'pw3d').
    test_mode: build test-mode annotations (adds `joint_relative_17`).
    bad_samples: policy for samples with unusable values
      (`sample_checks`): 'fail' raises `sample_checks.BadSamplesError` when
      the file is first read; 'skip' leaves them out: `len()` counts the good
      samples only and `source[j]` is the j-th good one (its annotation's
      `sample_idx` stays the index in the file, see `indices`).

  The file is read (and checked) on first use of `len()`, `[j]` or
  `annotations`.
  """

  def __init__(
    self,
    name: str,
    ann_file: str,
    image_root: str,
    dataset_name: str | None = None,
    test_mode: bool = False,
    bad_samples: str = "fail",
  ):
    self.name = name
    self.ann_file = ann_file
    self.image_root = image_root
    self.dataset_name = dataset_name
    self.test_mode = test_mode
    self.bad_samples = sample_checks.check_policy(bad_samples)
    self._annotations = None
    # Outcome of the value checks (kept when pickled, so worker processes
    # neither check again nor repeat the 'skip' message).
    self._keep = None  # [M] int64 file indices of the good samples; None: all
    self._skipped = None  # {file index: reason}; None: not checked yet

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_annotations"] = None
    return state

  @property
  def annotations(self) -> annotations_lib.HybrIKAnnotations:
    if self._annotations is None:
      hd = human_data_lib.load_human_data(self.ann_file)
      name = self.dataset_type_of(hd)
      annotations = annotations_lib.HybrIKAnnotations(
        hd, name, test_mode=self.test_mode
      )
      if self._skipped is None:
        self._keep, self._skipped = sample_checks.select_samples(
          annotations, self.bad_samples
        )
      self._annotations = annotations
    return self._annotations

  def dataset_type_of(self, hd) -> str:
    """The dataset type (protocol) of the loaded HumanData ``hd``: the
    file's own ``config`` entry, unless ``dataset_name`` was given (then
    they must agree).

    Raises:
      HumanDataError: an unknown ``dataset_name``, one that contradicts the
        file's ``config``, or a file that does not say and no name given.
    """
    own = hd.get("config")
    own = own if own in MMHUMAN3D_DATASETS else None
    name = self.dataset_name
    if name is not None and name not in MMHUMAN3D_DATASETS:
      raise human_data_lib.HumanDataError(
        self.ann_file,
        "dataset_name",
        f"unknown dataset type {name!r}; choose from {MMHUMAN3D_DATASETS}",
      )
    if name is not None and own is not None and name != own:
      raise human_data_lib.HumanDataError(
        self.ann_file,
        "config",
        f"the file is a {own!r} file (its 'config' entry) but dataset type "
        f"{name!r} was asked for; omit the dataset name to use the file's",
      )
    name = (
      name or own or (self.name if self.name in MMHUMAN3D_DATASETS else None)
    )
    if name is None:
      raise human_data_lib.HumanDataError(
        self.ann_file,
        "config",
        f"cannot tell the dataset type of {self.name!r} (its 'config' entry "
        f"is {hd.get('config')!r}); give the dataset name, one of "
        f"{MMHUMAN3D_DATASETS}",
      )
    return name

  @property
  def dataset_type(self) -> str:
    """The resolved dataset type (see :meth:`dataset_type_of`)."""
    return self.annotations.dataset_name

  @property
  def skipped(self) -> dict[int, str]:
    """{index in the file: reason} of the samples left out ('skip')."""
    _ = self.annotations  # reads and checks the file once
    return dict(self._skipped)

  @property
  def indices(self) -> np.ndarray:
    """[len(self)] int64: the file index of each sample of the source."""
    annotations = self.annotations
    if self._keep is None:
      return np.arange(len(annotations))
    return self._keep.copy()

  def __len__(self) -> int:
    annotations = self.annotations
    return len(annotations) if self._keep is None else len(self._keep)

  def _file_index(self, j: int) -> int:
    if not 0 <= j < len(self):
      raise IndexError(f"{self.name}: index {j} out of range [0, {len(self)})")
    return j if self._keep is None else int(self._keep[j])

  def annotation(self, j: int) -> dict:
    """Per-sample annotation (original frame coordinates)."""
    return self.annotations[self._file_index(j)]

  def image_path(self, j: int) -> str:
    return os.path.join(
      self.image_root, self.annotations.image_path[self._file_index(j)]
    )

  def __getitem__(self, j: int):
    return self.annotation(j), images_lib.read_image(self.image_path(j))


class TfdsSource:
  """Pre-cropped ArrayRecord dataset written by `tfds_builder.HybrikData`.

  Attributes:
    name: tfds name with config, e.g. 'hybrik_data/h36m'.
    data_dir: tfds data_dir the dataset was built into.
    split: 'train' or 'test'.
  """

  def __init__(self, name: str, data_dir: str, split: str = "train"):
    self.name = name
    self.data_dir = data_dir
    self.split = split
    self._source = None

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_source"] = None
    return state

  @property
  def source(self):
    if self._source is None:
      import tensorflow_datasets as tfds

      # Registers the builder so data_source can find it by name.
      self._source = tfds.data_source(
        self.name, split=self.split, data_dir=self.data_dir
      )
    return self._source

  def __len__(self) -> int:
    return len(self.source)

  def record(self, j: int) -> dict:
    if not 0 <= j < len(self):
      raise IndexError(f"{self.name}: index {j} out of range [0, {len(self)})")
    return self.source[j]

  def annotation(self, j: int) -> dict:
    """Per-sample annotation (original frame coordinates)."""
    return records.decode(self.record(j)["annotation"])

  def __getitem__(self, j: int):
    rec = self.record(j)
    annotation = records.decode(rec["annotation"])
    crop = images_lib.decode_image(rec["image"], f"{self.name}[{j}]")
    frame = precrop.virtual_frame(crop, rec["crop_offset"], rec["frame_hw"])
    return annotation, frame


def make_source(
  name: str,
  ann_file: str,
  image_root: str,
  source: str,
  split: str = "train",
  dataset_name: str | None = None,
  test_mode: bool = False,
  bad_samples: str = "fail",
):
  """`NpzSource` (source='npz') or `TfdsSource` (source='tfds').

  For 'tfds', `ann_file` is the tfds name ('hybrik_data/<config>') and
  `image_root` the tfds data_dir. `bad_samples` ('fail' / 'skip', see
  `NpzSource`) applies to 'npz'; the pre-cropped records are not re-checked.
  """
  sample_checks.check_policy(bad_samples)
  if source == "npz":
    return NpzSource(
      name, ann_file, image_root, dataset_name, test_mode, bad_samples
    )
  if source == "tfds":
    return TfdsSource(ann_file, image_root, split)
  raise ValueError(
    f"dataset {name}: unknown source {source!r} (expected 'npz' or 'tfds')"
  )
