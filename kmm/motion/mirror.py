"""Mirror augmentation: swap left and right in motion and text (paper §3.1 data; METHOD.md §1).

The mirror plane is x = 0 (the body's left is +X when it faces +Z): negate X and swap every joint
with its twin (``skeleton.MIRROR``); in the text, swap the words left/right (and their -ward(s) forms,
clockwise/counterclockwise). Mirroring twice is the identity, except that the spellings
"anticlockwise", "anti-clockwise" and "counter-clockwise" come back as "counterclockwise".
"""

import re

import numpy as np
import torch

from kmm.motion.skeleton import MIRROR

_SWAP = {
    "left": "right", "right": "left",
    "leftward": "rightward", "rightward": "leftward",
    "leftwards": "rightwards", "rightwards": "leftwards",
    "clockwise": "counterclockwise", "counterclockwise": "clockwise",
    "counter-clockwise": "clockwise", "anticlockwise": "clockwise", "anti-clockwise": "clockwise",
}
# longest alternatives first so "counter-clockwise" is not read as "counter-" + "clockwise"
_WORDS = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _SWAP), key=len, reverse=True)) + r")\b",
                    re.IGNORECASE)


def mirror_joints(joints):
    """(..., 22, 3) numpy or torch -> same type and shape: twins swapped, X negated."""
    flipped = joints[..., list(MIRROR), :]
    if isinstance(flipped, torch.Tensor):
        sign = torch.tensor([-1.0, 1.0, 1.0], dtype=flipped.dtype, device=flipped.device)
    else:
        sign = np.array([-1.0, 1.0, 1.0], dtype=flipped.dtype)
    return flipped * sign


def _match_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[0].isupper():
        return word[0].upper() + word[1:]
    return word


def mirror_text(text: str) -> str:
    """Swap left/right words, keeping case: "Raise the LEFT hand" -> "Raise the RIGHT hand".

    Whole words only ("bright", "lefty" unchanged); "left-handed" -> "right-handed".
    """
    return _WORDS.sub(lambda m: _match_case(_SWAP[m.group(0).lower()], m.group(0)), text)
