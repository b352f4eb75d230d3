"""Keypoint index tables of mmhuman3d's 190-joint ``human_data`` convention.

Every preprocessed HybrIK annotation file stores its keypoints in the
190-joint HumanData convention (``mmhuman3d/core/conventions/keypoints_mapping
/human_data.py``); the training config
``configs/hybrik/resnet34_hybrik_mixed.py`` then selects the 29 HybrIK joints
and the 17 Human3.6M joints from it and flips left/right with its own list of
61 HumanData pairs. The tables below are those
facts, written out as index lists (the values were checked against the name
lists of mmhuman3d 0.11.0 with ``get_mapping``/``get_flip_pairs``).
"""

from __future__ import annotations

NUM_HUMAN_DATA_JOINTS = 190

# HumanData indices of the 29 HybrIK joints, in HybrIK order: pelvis, l/r hip,
# spine1, l/r knee, spine2, l/r ankle, spine3, l/r foot, neck, l/r collar,
# jaw (HumanData 22), l/r shoulder, l/r elbow, l/r wrist, l/r thumb (66/71),
# head (15, HybrIK's head-top leaf), l/r middle (68/73), l/r bigtoe (60/63).
HYBRIK29_IDXS = (
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
  10,
  11,
  12,
  13,
  14,
  22,
  16,
  17,
  18,
  19,
  20,
  21,
  66,
  71,
  15,
  68,
  73,
  60,
  63,
)

# HumanData indices of the 17 Human3.6M joints, in H36M order: pelvis_extra,
# l hip_extra, l knee, l ankle, r hip_extra, r knee, r ankle, spine_extra,
# neck_extra, head_extra, headtop, l shoulder, l elbow, l wrist, r shoulder,
# r elbow, r wrist.
H36M_IDXS = (
  148,
  145,
  4,
  7,
  144,
  5,
  8,
  150,
  146,
  152,
  147,
  16,
  18,
  20,
  17,
  19,
  21,
)

# HumanData indices of the 17 MPI-INF-3DHP test joints (config `hp3d_idxs`).
HP3D_TEST_IDXS = (
  147,
  146,
  17,
  19,
  21,
  16,
  18,
  20,
  144,
  5,
  8,
  145,
  4,
  7,
  148,
  150,
  152,
)

# The config's `flip_pairs`: 61 (left, right) HumanData pairs (body, hands,
# eyes/brows, openpose, 3DHP extras). No index occurs twice.
HUMAN_DATA_FLIP_PAIRS = (
  (1, 2),
  (4, 5),
  (7, 8),
  (10, 11),
  (13, 14),
  (16, 17),
  (18, 19),
  (20, 21),
  (23, 24),
  (25, 40),
  (26, 41),
  (27, 42),
  (28, 43),
  (29, 44),
  (30, 45),
  (31, 46),
  (32, 47),
  (33, 48),
  (34, 49),
  (35, 50),
  (36, 51),
  (37, 52),
  (38, 53),
  (39, 54),
  (57, 56),
  (59, 58),
  (60, 63),
  (61, 64),
  (62, 65),
  (66, 71),
  (67, 72),
  (68, 73),
  (69, 74),
  (70, 75),
  (81, 80),
  (82, 79),
  (83, 78),
  (84, 77),
  (85, 76),
  (101, 98),
  (102, 97),
  (103, 96),
  (104, 95),
  (105, 100),
  (106, 99),
  (145, 144),
  (158, 155),
  (159, 156),
  (160, 157),
  (165, 162),
  (166, 163),
  (167, 164),
  (169, 168),
  (171, 170),
  (172, 175),
  (173, 176),
  (174, 177),
  (179, 180),
  (181, 182),
  (183, 184),
  (188, 189),
)

# `get_flip_pairs('smpl')`: left/right pairs of the 24 SMPL joints. Used to
# flip the pose (axis-angle per joint) and, shifted by -1, the 23 twist angles.
SMPL_FLIP_PAIRS = (
  (1, 2),
  (4, 5),
  (7, 8),
  (10, 11),
  (13, 14),
  (16, 17),
  (18, 19),
  (20, 21),
  (22, 23),
)

# `get_flip_pairs('hybrik_29')`: left/right pairs in HybrIK-29 order.
HYBRIK29_FLIP_PAIRS = (
  (1, 2),
  (4, 5),
  (7, 8),
  (10, 11),
  (13, 14),
  (16, 17),
  (18, 19),
  (20, 21),
  (22, 23),
  (25, 26),
  (27, 28),
)

# Source conventions -> HumanData (what `convert_kps(src, 'human_data')` maps,
# as HumanData destination index per source joint, in source order).
COCO17_TO_HUMAN_DATA = (
  55,
  57,
  56,
  59,
  58,
  16,
  17,
  18,
  19,
  20,
  21,
  145,
  144,
  4,
  5,
  7,
  8,
)
HP3D28_TO_HUMAN_DATA = (
  9,
  178,
  6,
  150,
  0,
  12,
  152,
  147,
  179,
  16,
  18,
  20,
  181,
  180,
  17,
  19,
  21,
  182,
  1,
  4,
  7,
  10,
  183,
  2,
  5,
  8,
  11,
  184,
)
HYBRIK29_TO_HUMAN_DATA = HYBRIK29_IDXS
H36M17_TO_HUMAN_DATA = H36M_IDXS

# HybrIK-29 joints whose uvd targets are zeroed for COCO and MPI-INF-3DHP
# samples (hips, spine2, spine3, feet) in `GenerateHybrIKTarget`.
NON_SMPL_MASKED_JOINTS = (1, 2, 6, 9, 10, 11)

# The config's `keypoints_maps` for `NewKeypointsSelection`: which annotation
# keys are cut down to which index list (190 -> 17 and 190 -> 29).
TRAIN_KEYPOINTS_MAPS = (
  (("keypoints3d17", "keypoints3d17_vis", "keypoints3d17_relative"), H36M_IDXS),
  (("keypoints3d", "keypoints3d_vis", "keypoints3d_relative"), HYBRIK29_IDXS),
)
