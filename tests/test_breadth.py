"""Breadth checks (kmm.eval.breadth): each passes a motion that does the action and fails standing still."""
import numpy as np
import pytest

from kmm.eval import breadth as b
from kmm.motion import ik
from kmm.motion.retarget import REST_OFFSETS
from kmm.motion.rotations import euler_zxy_to_matrix
from kmm.motion.skeleton import FOOT_JOINTS


def _body(T=60, root=None, angles=None):
    """FK of the rest skeleton: local Euler angles (T, 22, 3), root (T, 3); feet on the floor at rest."""
    a = np.zeros((T, 22, 3)) if angles is None else angles
    r = np.tile([0.0, 0.0, 0.0], (T, 1)) if root is None else root
    x = ik.forward_kinematics(euler_zxy_to_matrix(a), REST_OFFSETS, r)
    return x - np.array([0, x[0, list(FOOT_JOINTS), 1].min(), 0])


STILL = _body()


@pytest.mark.parametrize("action", [a.name for a in b.ACTIONS])
def test_standing_still_passes_no_check(action):
    check = {a.name: a.check for a in b.ACTIONS}[action]
    assert not check(STILL)[0]


def test_checks_pass_their_action():
    T = 60
    # jump: the whole body 0.3 m up for 0.4 s
    root = np.zeros((T, 3)); root[20:28, 1] = 0.3
    assert b.check_jump(_body(root=root))[0]
    # walking backwards 1.2 m (the body faces +Z)
    root = np.zeros((T, 3)); root[:, 2] = -0.02 * np.arange(T)
    assert b.check_walk_backwards(_body(root=root))[0]
    assert not b.check_walk_backwards(_body(root=-root))[0]
    # sidestep 1 m to the body's left (+X)
    root = np.zeros((T, 3)); root[:, 0] = np.linspace(0, 1, T)
    assert b.check_sidestep(_body(root=root))[0]
    # crawl: the head near the floor (root low, spine pitched forward 90 degrees)
    ang = np.zeros((T, 22, 3)); ang[:, 0, 1] = np.pi / 2
    root = np.tile([0.0, 0.45, 0.0], (T, 1))
    assert b.check_crawl(_body(root=root, angles=ang))[0]
    # turn around: the root yaws 180 degrees
    ang = np.zeros((T, 22, 3)); ang[:, 0, 0] = np.linspace(0, np.pi, T)
    assert b.check_turn_around(_body(angles=ang))[0]
    # sit: both thighs level for 1.5 s (hips flexed 90 degrees about X, knees back)
    ang = np.zeros((T, 22, 3)); ang[20:50, 1, 1] = ang[20:50, 2, 1] = -np.pi / 2
    ang[20:50, 4, 1] = ang[20:50, 5, 1] = np.pi / 2
    assert b.check_sit(_body(angles=ang))[0]


def test_prompts_are_not_training_captions():
    caps = {"a person jumps", "a person turns around", "a person sits down"}
    assert b.training_caption_overlap(caps) == []
    assert b.training_caption_overlap({"a person sits down on a chair"}) == ["a person sits down on a chair"]
