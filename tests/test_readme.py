"""README: exactly the two set-up commands, CI runs the test one, and the results tables match results/*.json."""
import json
import re
from pathlib import Path

import pytest

from kmm.eval.report import README_FILES, readme_section, render

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_two_setup_commands_and_ci_runs_the_test_one():
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)
    assert len(blocks) == 2
    assert "python app.py" in blocks[0] and "pytest" in blocks[1]
    assert blocks[1].strip() in (REPO / ".ci" / "run").read_text()


def test_results_section_matches_json():
    files = [REPO / f for f in README_FILES]   # the files the README's own header names, in its order
    if not all(f.is_file() for f in files):
        pytest.skip(f"{README_FILES} not all produced yet")
    expected = readme_section(render([json.loads(f.read_text()) for f in files]))
    assert expected in README
