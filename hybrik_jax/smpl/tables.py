"""Static kinematic-tree tables of SMPL and HybrIK's 29-joint skeleton.

All tables are plain Python tuples / numpy arrays: they are compile-time
constants of every jitted function that uses them.

Joint order (HybrIK-29): 0..23 are the SMPL joints, 24..28 the leaves
(head top, left/right middle finger tip, left/right big toe).
"""

from __future__ import annotations

NUM_SMPL_JOINTS = 24
NUM_HYBRIK_JOINTS = 29
NUM_BETAS = 10
NUM_POSE_BASIS = 207  # 23 joints x 9 rotation-matrix entries

# SMPL kinematic tree (smplx stores parents[0] = -1).
SMPL_PARENTS = (
  -1,
  0,
  0,
  0,
  1,
  2,
  3,
  4,
  5,
  6,
  7,
  8,
  9,
  9,
  9,
  12,
  13,
  14,
  16,
  17,
  18,
  19,
  20,
  21,
)

# HybrIK-29: SMPL tree + 5 leaves (parents 15, 22, 23, 10, 11).
HYBRIK_PARENTS = SMPL_PARENTS + (15, 22, 23, 10, 11)

# Template vertex ids of the 5 leaves: head top, left middle finger tip,
# right middle finger tip, left big toe, right big toe.
LEAF_VERTEX_IDS = (411, 2445, 5905, 3216, 6617)

JOINT_NAMES_29 = (
  "pelvis",
  "left_hip",
  "right_hip",
  "spine1",
  "left_knee",
  "right_knee",
  "spine2",
  "left_ankle",
  "right_ankle",
  "spine3",
  "left_foot",
  "right_foot",
  "neck",
  "left_collar",
  "right_collar",
  "jaw",
  "left_shoulder",
  "right_shoulder",
  "left_elbow",
  "right_elbow",
  "left_wrist",
  "right_wrist",
  "left_thumb",
  "right_thumb",
  "head",
  "left_middle",
  "right_middle",
  "left_bigtoe",
  "right_bigtoe",
)


def _hybrik_children(parents: tuple[int, ...]) -> tuple[int, ...]:
  """mmhuman3d ``HybrIKSMPL._parents_to_children`` (with its overrides).

  children[j] = the first joint whose parent is j; leaves -1; pelvis forced to
  spine1 (3) and spine3 (9) to the neck (12), so spine3 is solved as a
  single-child joint (the "three children" SVD branch is unreachable).
  """
  children = [-1] * len(parents)
  for j in range(len(parents)):
    p = parents[j]
    if p >= 0 and children[p] < 0:
      children[p] = j
  for leaf in range(NUM_SMPL_JOINTS, NUM_HYBRIK_JOINTS):
    children[leaf] = -1
  children[0] = 3
  children[9] = 12
  return tuple(children)


HYBRIK_CHILDREN = _hybrik_children(HYBRIK_PARENTS)
assert HYBRIK_CHILDREN == (
  3,
  4,
  5,
  6,
  7,
  8,
  9,
  10,
  11,
  12,
  27,
  28,
  15,
  16,
  17,
  24,
  18,
  19,
  20,
  21,
  22,
  23,
  25,
  26,
  -1,
  -1,
  -1,
  -1,
  -1,
)

# Children of the pelvis used by the root-orientation solvers: spine1 first,
# then the other children of joint 0 in index order.
PELVIS_CHILDREN = (3, 1, 2)


def tree_levels(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
  """Groups joints by depth in the tree (level 0 = root).

  Joints of one level depend only on joints of earlier levels, so a
  level-wise loop (unrolled at trace time, ~10 levels) replaces a per-joint
  chain of dependent matrix products.
  """
  depth = []
  for j, p in enumerate(parents):
    depth.append(0 if p < 0 else depth[p] + 1)
  levels = []
  for d in range(max(depth) + 1):
    levels.append(tuple(j for j in range(len(parents)) if depth[j] == d))
  return tuple(levels)


SMPL_LEVELS = tree_levels(SMPL_PARENTS)
HYBRIK_LEVELS = tree_levels(HYBRIK_PARENTS)
