"""kmm.eval.jump_check.judge: a flight of the right length inside the jump segment, then feet back down."""
from test_examples import _standing   # a static body standing on the floor

from kmm.eval.jump_check import judge


BOUNDS = (0, 60, 100, 160)           # walk 3 s, jump 2 s, walk 3 s at 20 fps


def test_a_half_second_flight_that_lands_passes():
    j = _standing(160)
    j[70:80, :, 1] += 0.3                                        # 10 frames = 0.5 s in the air
    r = judge(j, BOUNDS)
    assert r["passed"] and abs(r["flight_s"] - 0.5) < 1e-9 and r["grounded_after"] == 1.0


def test_no_flight_too_long_a_flight_and_a_body_that_stays_up_fail():
    assert not judge(_standing(160), BOUNDS)["passed"]           # never leaves the ground
    hover = _standing(160)
    hover[62:100, :, 1] += 0.3                                   # 1.9 s in the air: floating
    assert judge(hover, BOUNDS)["flight_s"] > 0.8 and not judge(hover, BOUNDS)["passed"]
    stuck = _standing(160)
    stuck[70:80, :, 1] += 0.3
    stuck[100:, :, 1] += 0.3                                     # never lands
    r = judge(stuck, BOUNDS)
    assert r["grounded_after"] == 0.0 and not r["passed"]
