"""Caption augmentation (ours): the captions are few and template-like, so training sees light paraphrases.

Pure functions; randomness from an explicit numpy Generator. Left/right mirroring of text lives in
kmm.motion.mirror and is applied together with the mirrored motion, never alone.
"""
from __future__ import annotations

import re

import numpy as np

_SUBJECTS = ("a person", "someone", "a man", "a woman", "the person", "a human", "the character")
_SUBJECT_RE = re.compile(r"^(a person|someone|a man|a woman|the person|a human|the character)\s+", re.I)
_PHRASES = (
    ("walks forward", ("walks ahead", "moves forward", "walks straight ahead")),
    ("walks backward", ("walks backwards", "steps backward")),
    ("runs", ("jogs", "runs quickly")),
    ("waves", ("waves", "is waving")),
    ("raises", ("lifts", "puts up")),
    ("turns", ("turns", "rotates")),
    ("jumps", ("leaps", "jumps up")),
    ("sits down", ("takes a seat", "sits")),
    ("sits", ("sits down", "takes a seat")),
    ("kicks", ("kicks out", "does a kick")),
    ("punches", ("throws a punch", "strikes")),
    ("picks up", ("lifts up", "grabs")),
    ("squats", ("crouches down", "does a squat")),
    ("crawls", ("crawls on hands and knees", "creeps")),
    ("dances", ("is dancing", "moves to music")),
    ("climbs", ("goes up", "clambers up")),
    ("throws", ("tosses", "hurls")),
    ("turns around", ("spins around", "turns back")),
    ("walks backwards", ("moves backwards", "steps backwards")),
    ("does a", ("performs a", "does a")),
    ("walks", ("walks", "strolls", "steps")),
    (", then ", (" and then ", ", after that ", ", then ")),
)


def paraphrase(text: str, rng: np.random.Generator, p: float = 0.5) -> str:
    """Returns `text` unchanged with probability 1 − p, else a light rewrite of it.

    'a person walks forward.' -> e.g. 'someone moves forward'
    """
    if rng.random() >= p:
        return text
    out = text.strip()
    m = _SUBJECT_RE.match(out)
    if m and rng.random() < 0.7:
        out = _SUBJECTS[rng.integers(len(_SUBJECTS))] + " " + out[m.end():]
    elif not m and rng.random() < 0.3:
        out = _SUBJECTS[rng.integers(len(_SUBJECTS))] + " " + out
    for src, alts in _PHRASES:
        if src in out and rng.random() < 0.5:
            out = out.replace(src, alts[rng.integers(len(alts))], 1)
    if rng.random() < 0.5:
        out = out.rstrip(".")
    if rng.random() < 0.2:
        out = out.capitalize()
    return out
