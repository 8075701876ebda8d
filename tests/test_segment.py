"""Prompt splitting, --lengths parsing and timeline validation (kmm/segment.py)."""

import math

import numpy as np
import pytest

from kmm.segment import (
    MAX_CHARS,
    MAX_PROMPT_CHARS,
    MAX_SEGMENTS,
    Segment,
    TimelineError,
    parse_lengths,
    split_prompt,
    validate_timeline,
)

SPLITS = [
    # the product spec's example
    ("walk forward, then turn left and sit down. After that wave with the right hand",
     ["walk forward", "turn left and sit down", "wave with the right hand"]),
    # must not split: plain "and", trailing period, commas, "next" inside a clause, "before"
    ("walk back and forth", ["walk back and forth"]),
    ("jump up and down", ["jump up and down"]),
    ("a person walks forward.", ["a person walks forward"]),
    ("look left and right", ["look left and right"]),
    ("turn left and sit down", ["turn left and sit down"]),
    ("a person, slowly, walks forward", ["a person, slowly, walks forward"]),
    ("take the next step", ["take the next step"]),
    ("sit down before waving", ["sit down before waving"]),
    ("walk 1.5 meters then stop", ["walk 1.5 meters", "stop"]),  # decimal point is not a sentence end
    # sentence ends, ';' and line breaks
    ("Walk. Then sit.", ["Walk", "sit"]),
    ("stand up!  Dance? bow", ["stand up", "Dance", "bow"]),
    ("run in a circle; crouch", ["run in a circle", "crouch"]),
    ("run\nsit\r\n\nclap", ["run", "sit", "clap"]),
    # connectives
    ("walk and then run", ["walk", "run"]),
    ("raise arms then lower them then clap", ["raise arms", "lower them", "clap"]),
    ("walk forward followed by a jump", ["walk forward", "a jump"]),
    ("jump, afterwards kneel", ["jump", "kneel"]),
    ("First, walk forward; next, jump", ["walk forward", "jump"]),
    ("walk and finally sit down", ["walk", "sit down"]),
    ("walk, and then, finally, sit", ["walk", "sit"]),
    ("Finally, bow", ["bow"]),
    ("THEN   spin   around", ["spin around"]),  # case-insensitive, whitespace collapsed
    ("walk forward, and after that wave", ["walk forward", "wave"]),
]


@pytest.mark.parametrize("text, expected", SPLITS)
def test_split_prompt_table(text, expected):
    assert split_prompt(text) == expected


def test_split_prompt_is_deterministic_and_idempotent_on_pieces():
    text = SPLITS[0][0]
    pieces = split_prompt(text)
    assert split_prompt(text) == pieces
    for piece in pieces:  # a piece is already one action
        assert split_prompt(piece) == [piece]


@pytest.mark.parametrize("text", ["", "   \n\t", ". ; !", "then", "and then. finally"])
def test_split_prompt_rejects_prompts_without_actions(text):
    with pytest.raises(TimelineError):
        split_prompt(text)


def test_split_prompt_rejects_long_and_non_text_prompts():
    with pytest.raises(TimelineError, match=str(MAX_PROMPT_CHARS)):
        split_prompt("walk " * (MAX_PROMPT_CHARS // 5 + 1))
    assert split_prompt("w" * MAX_PROMPT_CHARS) == ["w" * MAX_PROMPT_CHARS]
    with pytest.raises(TimelineError):
        split_prompt(None)


def test_timeline_error_is_a_value_error():
    assert issubclass(TimelineError, ValueError)


@pytest.mark.parametrize("spec, n, expected", [
    ("3,2,4", 3, [3.0, 2.0, 4.0]),
    ("3,auto,4", 3, [3.0, None, 4.0]),
    ("3, ,4", 3, [3.0, None, 4.0]),
    (" 2.5 ", 4, [2.5] * 4),
    ("auto", 2, [None, None]),
    ("", 2, [None, None]),
    ("3s, AUTO", 2, [3.0, None]),
])
def test_parse_lengths(spec, n, expected):
    assert parse_lengths(spec, n) == expected


@pytest.mark.parametrize("spec, n", [("3,2", 3), ("1,2,3,4", 3), ("3,abc", 2), ("3,,", 2), ("1", 0)])
def test_parse_lengths_rejects(spec, n):
    with pytest.raises(TimelineError):
        parse_lengths(spec, n)


def test_validate_timeline_normalises():
    out = validate_timeline([("walk  forward ", 3), Segment("sit down"), Segment("wave", np.float32(2.0))])
    assert out == [Segment("walk forward", 3.0), Segment("sit down", None), Segment("wave", 2.0)]
    assert all(type(s.seconds) is float for s in out if s.seconds is not None)


def test_validate_timeline_accepts_limits_exactly():
    out = validate_timeline([("a" * MAX_CHARS, 1.0), ("b", 20.0)] + [("c", None)] * (MAX_SEGMENTS - 2))
    assert len(out) == MAX_SEGMENTS


@pytest.mark.parametrize("segments, message", [
    ([], "empty"),
    ([("walk", 2.0), ("   ", 2.0)], "Segment 2 has no text"),
    ([("walk", 2.0), (None, 2.0)], "Segment 2 has no text"),
    ([("x" * (MAX_CHARS + 1), 2.0)], f"limit is {MAX_CHARS}"),
    ([("walk", 2.0)] * (MAX_SEGMENTS + 1), f"limit is {MAX_SEGMENTS}"),
    ([("walk", math.nan)], "Segment 1.*finite"),
    ([("walk", math.inf)], "finite"),
    ([("walk", 0.0)], "positive"),
    ([("walk", -3.0)], "positive"),
    ([("walk", 0.5)], "shorter than the minimum"),
    ([("walk", 2.0), ("run", 25.0)], "Segment 2.*longer than the maximum"),
    ([("walk", "3")], "not a number"),
    ([("walk", True)], "not a number"),
])
def test_validate_timeline_rejects(segments, message):
    with pytest.raises(TimelineError, match=message):
        validate_timeline(segments)


def test_validate_timeline_custom_limits():
    with pytest.raises(TimelineError, match="limit is 2"):
        validate_timeline([("a", 1.0)] * 3, max_segments=2)
    assert validate_timeline([("a", 0.5)], min_seconds=0.25)[0].seconds == 0.5
    with pytest.raises(TimelineError):
        validate_timeline([("a", 6.0)], max_seconds=5.0)
    with pytest.raises(TimelineError):
        validate_timeline([("abcd", None)], max_chars=3)
