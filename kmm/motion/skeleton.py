"""Skeleton facts for the 22-joint SMPL/HumanML3D body (paper §3.1 data; METHOD.md §1). Data only."""

FPS = 20
FRAME_TIME = 1.0 / FPS
N_JOINTS = 22
FEATURE_DIM = 263

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

# Index of each joint's mirror twin (left <-> right); centre joints map to themselves.
MIRROR = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20)

# Joints used for heading (facing) and foot contact.
LEFT_HIP, RIGHT_HIP, LEFT_SHOULDER, RIGHT_SHOULDER = 1, 2, 16, 17
FOOT_JOINTS = (7, 10, 8, 11)  # left ankle, left foot, right ankle, right foot
LEFT_CHAIN = tuple(i for i, n in enumerate(JOINT_NAMES) if n.startswith("left_"))
RIGHT_CHAIN = tuple(i for i, n in enumerate(JOINT_NAMES) if n.startswith("right_"))

# Rest-pose (T-pose) bone directions, unit vectors from parent to joint, facing +Z, Y up.
# The body's left is +X when it faces +Z (right-handed, Y up).
REST_DIRECTIONS = (
    (0.0, 0.0, 0.0),    # pelvis (root)
    (1.0, -0.8, 0.0),   # left_hip
    (-1.0, -0.8, 0.0),  # right_hip
    (0.0, 1.0, 0.0),    # spine1
    (0.0, -1.0, 0.0),   # left_knee
    (0.0, -1.0, 0.0),   # right_knee
    (0.0, 1.0, 0.0),    # spine2
    (0.0, -1.0, 0.0),   # left_ankle
    (0.0, -1.0, 0.0),   # right_ankle
    (0.0, 1.0, 0.0),    # spine3
    (0.0, -0.3, 1.0),   # left_foot
    (0.0, -0.3, 1.0),   # right_foot
    (0.0, 1.0, 0.0),    # neck
    (1.0, 0.6, 0.0),    # left_collar
    (-1.0, 0.6, 0.0),   # right_collar
    (0.0, 1.0, 0.0),    # head
    (1.0, 0.0, 0.0),    # left_shoulder
    (-1.0, 0.0, 0.0),   # right_shoulder
    (1.0, 0.0, 0.0),    # left_elbow
    (-1.0, 0.0, 0.0),   # right_elbow
    (1.0, 0.0, 0.0),    # left_wrist
    (-1.0, 0.0, 0.0),   # right_wrist
)

# 263-d feature layout (METHOD.md §1): name -> slice.
FEATURE_SLICES = {
    "root_rot_vel": slice(0, 1),      # yaw velocity about +Y (rad / frame)
    "root_lin_vel": slice(1, 3),      # root (x, z) velocity in the root's heading frame (m / frame)
    "root_height": slice(3, 4),       # pelvis y (m)
    "ric": slice(4, 67),              # joints 1..21 relative to root xz, heading-canonical (21 x 3)
    "rot6d": slice(67, 193),          # joints 1..21 local rotations, 6D (21 x 6)
    "velocity": slice(193, 259),      # joints 0..21 velocities, heading-canonical (22 x 3)
    "contacts": slice(259, 263),      # foot contacts for FOOT_JOINTS (0/1)
}
