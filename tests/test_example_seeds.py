"""kmm.eval.example_seeds: seed lists, and failures() agrees with the checks it runs."""
from pathlib import Path

from kmm import app_logic as logic
from kmm.eval import kinematic_checks as K
from kmm.eval.example_seeds import failures, main, parse_seeds
from kmm.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_parse_seeds():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7] and parse_seeds("5") == [5]


def test_failures_lists_exactly_the_failing_checks(tiny_bundle, capsys):
    pipe = Pipeline.from_pretrained(tiny_bundle)
    ex = next(e for e in logic.load_examples(ROOT / "examples") if e.key == "06_walk_jump_sit")
    bad = failures(pipe, ex, seed=0)
    out = pipe.generate([(s.text, s.seconds) for s in ex.segments], seed=0)
    b = out.boundaries
    expected = [f"{k + 1}:{n}" for k, n in ex.checks if not K.run_check(n, out.joints[b[k]:b[k + 1]]).passed]
    assert bad == expected
    assert main(["--weights", str(tiny_bundle), "--only", "06_walk_jump_sit", "--seeds", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"06_walk_jump_sit seed 0: {'PASS' if not bad else ' '.join(bad)}"
    assert lines[-1] == f"06_walk_jump_sit: passes at {int(not bad)} of 1 seeds (the file's seed: {ex.seed})"


def test_values_prints_what_each_failing_check_measured(tiny_bundle, capsys):
    from kmm.eval.example_seeds import check_results

    pipe = Pipeline.from_pretrained(tiny_bundle)
    ex = next(e for e in logic.load_examples(ROOT / "examples") if e.key == "06_walk_jump_sit")
    results = check_results(pipe, ex, seed=0)
    assert [label for label, _ in results] == [f"{k + 1}:{n}" for k, n in ex.checks]
    bad = [(label, c) for label, c in results if not c.passed]
    assert main(["--weights", str(tiny_bundle), "--only", "06_walk_jump_sit", "--seeds", "0", "--values"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[0]
    shown = bad if bad else [("PASS", None)] + results
    assert line == "06_walk_jump_sit seed 0: " + " ".join(l if c is None else f"{l} ({c.message})" for l, c in shown)
