"""Which samples of a HumanData file are usable.

The HumanData reader (``human_data.validate_human_data``) checks shapes; this
module checks the *values* that the per-sample annotation builder
(``annotations.HybrIKAnnotations``) hands to the transforms, for all samples
at once (vectorised: files have ~10^5 samples). A sample is bad when

* ``bbox_xywh`` (stored as x1, y1, x2, y2 px; only those 4 columns are read)
  is non-finite, has a negative side (w = x2 - x1 < 0 or h = y2 - y1 < 0)
  or no size at all (w = h = 0: the crop scale is 0). One zero side is
  legal, as in mmhuman3d: the box is widened to the input's aspect ratio;
* ``depth_factor`` (mm or m) is non-finite or <= 0;
* any value that the builder reads is non-finite: every keypoints array it
  reads (``HybrIKAnnotations.keypoint_keys``, confidence column included),
  ``smpl.thetas`` / ``smpl.betas`` / ``has_smpl`` (when the SMPL branch is
  used), ``cam_param.intrinsic``, ``phi`` / ``phi_weight``, ``root_cam``.

Zeros are never bad: COCO samples have all-zero intrinsics and root, and a
joint with confidence 0 is "missing" (zero coordinates), both legal.

What happens to bad samples is the policy ``config.data.bad_samples``:

* ``'fail'``: :class:`BadSamplesError` (a ``HumanDataError``, so a
  ``ValueError``), one line naming the file, each field with its reason and
  the first sample indices.
* ``'skip'``: the samples are dropped (one logged line with the count and
  the first indices); the source reports them as ``{index: reason}``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import numpy as np

from hybrik_jax.data.human_data import HumanDataError

log = logging.getLogger(__name__)

POLICIES = ("fail", "skip")
# Sample indices listed per field in a message.
MAX_LISTED = 5


def check_policy(policy: str) -> str:
  """Returns ``policy`` if it is one of :data:`POLICIES`, else ValueError."""
  if policy not in POLICIES:
    raise ValueError(
      f"data.bad_samples={policy!r}; choose from "
      f"{', '.join(repr(p) for p in POLICIES)}"
    )
  return policy


@dataclasses.dataclass(frozen=True)
class Problem:
  """One kind of bad value in one field.

  Attributes:
    field: the HumanData key (``smpl.thetas`` for a sub-key).
    reason: e.g. 'non-finite', 'non-positive size'.
    indices: [K] int64 sample indices (ascending) that have it.
  """

  field: str
  reason: str
  indices: np.ndarray

  def describe(self) -> str:
    """'<field>: <reason> at i, j, ...' (at most MAX_LISTED indices)."""
    shown = ", ".join(str(int(i)) for i in self.indices[:MAX_LISTED])
    more = len(self.indices) - MAX_LISTED
    if more > 0:
      shown += f" and {more} more"
    return f"{self.field}: {self.reason} at {shown}"


@dataclasses.dataclass(frozen=True)
class SampleReport:
  """The bad samples of one HumanData file.

  Attributes:
    path: the file.
    num_samples: N, samples in the file.
    problems: one :class:`Problem` per (field, reason) found, in check order.
  """

  path: str
  num_samples: int
  problems: tuple[Problem, ...]

  @property
  def bad(self) -> np.ndarray:
    """[N] bool, True for a bad sample."""
    mask = np.zeros(self.num_samples, bool)
    for p in self.problems:
      mask[p.indices] = True
    return mask

  @property
  def bad_indices(self) -> np.ndarray:
    """[B] int64 ascending indices of the bad samples."""
    return np.flatnonzero(self.bad)

  def reasons(self) -> dict[int, str]:
    """{sample index: 'field: reason; field: reason'} for the bad samples."""
    out: dict[int, list[str]] = {}
    for p in self.problems:
      for i in p.indices.tolist():
        out.setdefault(i, []).append(f"{p.field}: {p.reason}")
    return {i: "; ".join(out[i]) for i in sorted(out)}

  def describe(self, of_total: bool = False) -> str:
    """'<k> bad sample(s)[ of <N>] (<field>: <reason> at i, j; ...)'."""
    k = len(self.bad_indices)
    total = f" of {self.num_samples}" if of_total else ""
    details = "; ".join(p.describe() for p in self.problems)
    return f"{k} bad sample{'s' if k != 1 else ''}{total} ({details})"

  def error(self) -> BadSamplesError:
    return BadSamplesError(
      self.path,
      self,
      f"{self.describe()}; fix the file or set --config.data.bad_samples=skip",
    )


class BadSamplesError(HumanDataError):
  """Samples of a HumanData file hold unusable values (policy 'fail').

  The message is one line: ``<file>: <k> bad samples (<field>: <reason> at
  <indices>; ...); fix the file or set --config.data.bad_samples=skip``.

  Attributes:
    path: the file.
    field: the first field at fault.
    report: the :class:`SampleReport` (every field, reason and index).
  """

  def __init__(self, path: Any, report: SampleReport, message: str):
    self.path = str(path)
    self.report = report
    self.field = report.problems[0].field if report.problems else "<file>"
    ValueError.__init__(self, f"{self.path}: {message}")


def _non_finite(values: Any, n: int) -> np.ndarray:
  """[N] bool: sample has a NaN/inf anywhere in ``values`` ([N, ...])."""
  a = np.asarray(values)
  if a.dtype.kind not in "fc":  # integers and bools are always finite
    return np.zeros(n, bool)
  return ~np.isfinite(a.reshape(n, -1)).all(axis=1)


def find_bad_samples(annotations) -> SampleReport:
  """Checks the values a :class:`HybrIKAnnotations` reads, for every sample.

  Args:
    annotations: an ``annotations.HybrIKAnnotations``; its resolved fields
      (SMPL branch or not, test mode, which keypoints arrays) say what is
      read, so only those are checked.

  Returns:
    A :class:`SampleReport` (no problems for a clean file).
  """
  ann = annotations
  hd = ann.human_data
  n = ann.num_data
  path = hd.path or "<memory>"
  problems: list[Problem] = []

  def add(field: str, reason: str, mask: np.ndarray) -> None:
    if mask.any():
      problems.append(Problem(field, reason, np.flatnonzero(mask)))

  bbox = np.asarray(ann.bbox_xyxy)[:, :4]  # [N, 4] x1, y1, x2, y2
  bad_box = _non_finite(bbox, n)
  add("bbox_xywh", "non-finite", bad_box)
  with np.errstate(invalid="ignore"):
    w = bbox[:, 2] - bbox[:, 0]
    h = bbox[:, 3] - bbox[:, 1]
    add(
      "bbox_xywh",
      "negative or zero size",
      ~bad_box & ((w < 0) | (h < 0) | ((w == 0) & (h == 0))),
    )

  depth = np.asarray(ann.depth_factor).reshape(n)  # [N]
  bad_depth = _non_finite(depth, n)
  add("depth_factor", "non-finite", bad_depth)
  with np.errstate(invalid="ignore"):
    add("depth_factor", "non-positive", ~bad_depth & (depth <= 0))

  fields: list[tuple[str, Any]] = [
    (key, hd.get_raw_value(key)) for key in ann.keypoint_keys
  ]
  if ann.smpl_present:
    fields += [("smpl.thetas", ann.thetas), ("smpl.betas", ann.betas)]
    if "has_smpl" in hd:
      fields.append(("has_smpl", ann.has_smpl))
  if ann.intrinsic is not None:
    fields.append(("cam_param.intrinsic", ann.intrinsic))
  if ann.twist is not None:
    fields += [("phi", ann.twist), ("phi_weight", ann.twist_weight)]
  if ann.root_cam is not None:
    fields.append(("root_cam", ann.root_cam))
  for field, values in fields:
    add(field, "non-finite", _non_finite(values, n))
  return SampleReport(os.fspath(path), n, tuple(problems))


def select_samples(
  annotations, policy: str
) -> tuple[np.ndarray | None, dict[int, str]]:
  """Applies the bad-sample policy to one annotation file.

  Args:
    annotations: an ``annotations.HybrIKAnnotations``.
    policy: 'fail' or 'skip' (:data:`POLICIES`).

  Returns:
    (keep, skipped): ``keep`` is None when every sample is good (use the
    file's indices as they are), else [M] int64 ascending indices of the
    good samples; ``skipped`` is {index: reason} of the dropped samples.

  Raises:
    BadSamplesError: a bad sample under 'fail', or no good sample left.
    ValueError: an unknown policy.
  """
  check_policy(policy)
  report = find_bad_samples(annotations)
  if not report.problems:
    return None, {}
  if policy == "fail":
    raise report.error()
  bad = report.bad
  if bad.all():
    raise BadSamplesError(
      report.path,
      report,
      f"{report.describe(of_total=True)}: nothing is left with "
      "data.bad_samples=skip; fix the file",
    )
  log.warning(
    "%s: skipping %s (data.bad_samples=skip)",
    report.path,
    report.describe(of_total=True),
  )
  return np.flatnonzero(~bad), report.reasons()
