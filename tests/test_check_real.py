"""kmm.eval.check_real: the example checks measured on (here synthetic) captioned clips."""
from types import SimpleNamespace

import numpy as np
import pytest

from kmm.eval import check_real


def _clip(caption, drop=0.0, T=60):
    j = np.zeros((T, 22, 3))
    j[:, :, 1] = 0.8                               # every joint at pelvis height: a still body
    j[T // 2:, 0, 1] -= drop                       # the pelvis goes down in the second half
    return SimpleNamespace(joints=j, labels=[caption], captions=[caption])


def test_positives_are_the_clips_whose_caption_names_the_action():
    clips = [_clip("Sit in chair and get up", 0.4), _clip("sit on high stool", 0.1), _clip("stand still"),
             _clip("walk forward"), _clip("a person waits")]
    r = check_real.validate_example_checks(clips, ["sit"])["sit"]
    assert r["positives"] == 2 and r["negatives"] == 3
    assert r["pass_positives"] == 0.5 and r["pass_negatives"] == 0.0
    assert r["median_positive"] == pytest.approx(0.25)
    assert [c[3] for c in r["clips"]] == [True, False]
    table = check_real.render({"sit": r}, show_clips=True)
    assert "| sit | 0.20 | 2, 0.50 | 0.25 | 3, 0.00 |" in table and "fail" in table


def test_every_pattern_names_a_known_check():
    from kmm.eval.kinematic_checks import CHECKS
    assert set(check_real.PATTERNS) <= set(CHECKS)


def test_unknown_check_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        check_real.main(["--only", "levitate"])
    assert "unknown check(s) levitate" in capsys.readouterr().err
