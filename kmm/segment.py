"""Prompt segmentation and timeline validation for extended generation (METHOD.md §4).

A timeline is a list of ``Segment(text, seconds)``. This module turns one free-text prompt into the
segments' texts, parses a ``--lengths`` option, and checks a timeline before any compute so that a user
gets a clear message instead of a crash deep inside the model. Pure functions, no I/O.

Splitting rule of :func:`split_prompt` (deterministic; the same text always gives the same pieces):

1. Sentence breaks: ``.``, ``!`` or ``?`` followed by whitespace or the end, a ``;``, a line break.
2. Sequencing connectives, anywhere in a sentence (as whole words, any case):
   ``then`` (so also ``and then``, ``, then``), ``after that``, ``afterwards``, ``followed by``.
3. Ordinal adverbs only where a clause starts (sentence start, after a comma, after ``and``):
   ``next``, ``finally`` — so "Next, jump" and "walk and finally sit" split, "take the next step" does not.
4. Clean each piece: drop a leading ``and`` / ``first`` and a trailing ``and``, strip punctuation at the
   ends, collapse whitespace; drop pieces that end up empty. Case is kept.

Deliberately *not* split points:

- plain ``and`` ("turn left and sit down", "walk back and forth", "jump up and down", "left and right"):
  it joins simultaneous or compound actions as often as sequential ones, and the model handles
  short compounds within one segment;
- plain commas ("a person, slowly, walks forward");
- ``before`` / ``after`` on their own: "before X, Y" means Y happens first, so splitting would give
  the wrong order; write "Y, then X" instead.

Example: ``"walk forward, then turn left and sit down. After that wave with the right hand"`` →
``["walk forward", "turn left and sit down", "wave with the right hand"]``.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Iterable

from kmm.errors import TimelineError  # noqa: F401  (defined in kmm/errors.py; this name kept)

MIN_SECONDS = 1.0         # shortest segment we generate (20 frames = 5 tokens)
MAX_SECONDS = 20.0        # longest single segment
MAX_SEGMENTS = 64         # segments per timeline
MAX_CHARS = 300           # characters per segment text
MAX_PROMPT_CHARS = 4000   # characters in the whole free-text prompt

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])(?:\s+|$)|[;\r\n]+")
_CONNECTIVE = re.compile(
    r"\b(?:then|after\s+that|afterwards|followed\s+by)\b"   # anywhere
    r"|(?:^|,|\band\b)\s*\b(?:next|finally)\b",              # only where a clause starts
    flags=re.IGNORECASE,
)
_LEADING_FILLER = re.compile(r"^(?:(?:and|first)\b[\s,]*)+", flags=re.IGNORECASE)
_TRAILING_AND = re.compile(r"(?:[\s,]+and)+$", flags=re.IGNORECASE)
_EDGE_PUNCT = " \t,;:.!?-"


@dataclass(frozen=True)
class Segment:
    """One action of a timeline: its text and its length in seconds (``None``: let the model choose).

    >>> Segment("walk forward", 3.0)
    Segment(text='walk forward', seconds=3.0)
    """

    text: str
    seconds: float | None = None


def _clean(piece: str) -> str:
    """Strip fillers, edge punctuation and extra whitespace: ``" and, sit down ."`` → ``"sit down"``."""
    previous = None
    while piece != previous:  # repeat: stripping one layer can expose another ("and, first, walk")
        previous = piece
        piece = piece.strip(_EDGE_PUNCT)
        piece = _LEADING_FILLER.sub("", piece)
        piece = _TRAILING_AND.sub("", piece)
    return " ".join(piece.split())


def split_prompt(text: str) -> list[str]:
    """Split a free-text prompt into action texts, one per segment (rule in the module docstring).

    >>> split_prompt("walk forward, then turn left and sit down. After that wave with the right hand")
    ['walk forward', 'turn left and sit down', 'wave with the right hand']
    >>> split_prompt("jump up and down")
    ['jump up and down']

    Raises:
        TimelineError: the prompt is not a string, is empty, has no action left after splitting, or is
            longer than ``MAX_PROMPT_CHARS``.
    """
    if not isinstance(text, str):
        raise TimelineError(f"The prompt must be text, got {type(text).__name__}.")
    if len(text) > MAX_PROMPT_CHARS:
        raise TimelineError(
            f"The prompt has {len(text)} characters; the limit is {MAX_PROMPT_CHARS}. "
            "Shorten it or split it into several timelines."
        )
    if not text.strip():
        raise TimelineError("The prompt is empty: describe at least one action, e.g. 'a person walks forward'.")

    # 1. sentences, 2.-3. connectives inside each sentence, 4. clean and drop empty pieces
    pieces = []
    for sentence in _SENTENCE_BREAK.split(text):
        for piece in _CONNECTIVE.split(sentence):
            piece = _clean(piece)
            if piece:
                pieces.append(piece)
    if not pieces:
        raise TimelineError(f"The prompt {text.strip()!r} contains no action to generate.")
    return pieces


def parse_lengths(spec: str, n: int) -> list[float | None]:
    """Parse a ``--lengths`` option into one length in seconds (or ``None`` for auto) per segment.

    Entries are comma-separated numbers of seconds (an ``s`` suffix is allowed), ``auto`` or empty for
    "let the model choose". Give ``n`` entries, or exactly one to use for every segment.
    Range checks happen in :func:`validate_timeline`.

    >>> parse_lengths("3,auto,4", 3)
    [3.0, None, 4.0]
    >>> parse_lengths("2.5", 2)
    [2.5, 2.5]
    """
    if n < 1:
        raise TimelineError("There are no segments to give lengths to.")
    entries = [entry.strip().lower() for entry in str(spec).split(",")]
    if len(entries) not in (1, n):
        raise TimelineError(
            f"--lengths has {len(entries)} entries but there are {n} segments: "
            f"give {n} comma-separated lengths, or one length for all segments."
        )
    lengths: list[float | None] = []
    for i, entry in enumerate(entries, start=1):
        if entry in ("", "auto"):
            lengths.append(None)
            continue
        number = entry[:-1].strip() if entry.endswith("s") else entry
        try:
            lengths.append(float(number))
        except ValueError:
            raise TimelineError(
                f"--lengths entry {i} ({entry!r}) is not a number of seconds or 'auto'."
            ) from None
    return lengths * n if len(lengths) == 1 else lengths


def validate_timeline(
    segments: Iterable[Segment | tuple[str, float | None]],
    *,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
    max_segments: int = MAX_SEGMENTS,
    max_chars: int = MAX_CHARS,
) -> list[Segment]:
    """Check a timeline before any compute; return it as ``Segment``s with tidied text and float lengths.

    Accepts ``Segment``s or ``(text, seconds)`` pairs. Messages name the offending segment (1-based).

    >>> validate_timeline([("walk  forward", 3), Segment("sit down")])
    [Segment(text='walk forward', seconds=3.0), Segment(text='sit down', seconds=None)]

    Raises:
        TimelineError: no segments, too many, empty or too long text, or a length that is not a finite
            number in ``[min_seconds, max_seconds]``.
    """
    segments = [s if isinstance(s, Segment) else Segment(*s) for s in segments]
    if not segments:
        raise TimelineError("The timeline is empty: add at least one segment.")
    if len(segments) > max_segments:
        raise TimelineError(
            f"The timeline has {len(segments)} segments; the limit is {max_segments}."
        )

    checked = []
    for i, segment in enumerate(segments, start=1):
        if not isinstance(segment.text, str) or not segment.text.strip():
            raise TimelineError(f"Segment {i} has no text: describe its action or remove it.")
        text = " ".join(segment.text.split())
        if len(text) > max_chars:
            raise TimelineError(
                f"Segment {i} has {len(text)} characters; the limit is {max_chars} per segment. "
                "Shorten it or split it into several segments."
            )

        seconds = segment.seconds
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
                raise TimelineError(f"Segment {i}: length {seconds!r} is not a number of seconds.")
            seconds = float(seconds)
            if not math.isfinite(seconds):
                raise TimelineError(f"Segment {i}: length {seconds} is not a finite number of seconds.")
            if seconds <= 0:
                raise TimelineError(f"Segment {i}: length must be positive, got {seconds:g} s.")
            if seconds < min_seconds:
                raise TimelineError(
                    f"Segment {i}: {seconds:g} s is shorter than the minimum of {min_seconds:g} s."
                )
            if seconds > max_seconds:
                raise TimelineError(
                    f"Segment {i}: {seconds:g} s is longer than the maximum of {max_seconds:g} s; "
                    "split the action into several segments."
                )
        checked.append(Segment(text, seconds))
    return checked
