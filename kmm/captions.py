"""Dataset caption labels -> sentences people would type (METHOD.md §1 data; ours).

The CMU descriptions are short labels in many styles ("JumpForward", "walk/stride", "Front_Kicking001",
"playground - forward jumps, turn around", "synchronized walk (2 subjects - subject A)"); the Bandai Namco
captions are already sentences. `describe(label)` turns one label into one plain sentence, deterministically:

1. clean: drop take numbers ("001"), clean-up tags ("CleanedGRS"), "(2 subjects - subject A)",
   "(human subject)"; split CamelCase and underscores; "/" between words -> " or "; lower case;
2. expand abbreviations (`_ABBREVIATIONS`: "fwd" -> "forward", "w/" -> "with", "lb" -> "pound", ...);
3. labels that carry no motion information (`UNINFORMATIVE`: "Story", "Alaskan vacation", "clean",
   "dynamic calibration", bare weights like "12.5lb", ...) -> None. Decision (ours): such clips keep training the
   tokenizer (their motion is real) but are **dropped from text-conditioned training** — their text would teach
   the generator a name with no meaning, and describing them from the motion needs a motion classifier we do not
   have. A few labels with a known meaning are rewritten instead (`_REWRITES`: "Story" is subject 138 telling a
   story with gestures; "180" is a turn);
4. "topic - a, b, c" -> the list after the dash (the topic is kept when the list is empty);
5. each comma/"and then" item becomes a verb phrase: a base verb or gerund at its start is put in the third
   person ("walk" -> "walks", "running" -> "runs"), a noun phrase becomes "does <noun phrase>" ("salsa dance"
   -> "does a salsa dance"); items are joined with ", then " (CMU lists actions in the order they happen);
6. "a person " + phrase.

Paraphrases for augmentation live in kmm.text_aug; left/right mirroring in kmm.motion.mirror.
"""
from __future__ import annotations

import re

UNINFORMATIVE = frozenset({
    "clean", "cleaned", "alaskan vacation", "dynamic calibration", "calibration", "tv", "mummy", "range of motion",
    "vignettes", "misc", "miscellaneous", "test", "pose", "t pose", "tpose", "motorcycle", "subject",
})
_REWRITES = {
    "story": "a person tells a story with hand gestures",
    "90": "a person turns 90 degrees", "180": "a person turns around", "270": "a person turns 270 degrees",
    "360": "a person turns all the way around",
    "standing": "a person stands still", "stand": "a person stands still",
}
_ABBREVIATIONS = {
    "fwd": "forward", "bwd": "backward", "bkwd": "backward", "w/": "with ", "w": "with", "lb": "pound",
    "lbs": "pounds", "med": "medium", "sm": "small", "lg": "large", "rt": "right", "lt": "left",
    "l": "left", "r": "right", "sideway": "sideways", "jumpjacks": "jumping jacks", "jog": "jog",
}
# verbs whose third person / gerund is irregular enough to list
_THIRD = {"go": "goes", "do": "does", "have": "has", "be": "is", "carry": "carries", "try": "tries",
          "fly": "flies", "cry": "cries", "dry": "dries", "catch": "catches", "reach": "reaches",
          "punch": "punches", "stretch": "stretches", "wash": "washes", "push": "pushes", "touch": "touches",
          "brush": "brushes", "watch": "watches", "march": "marches", "search": "searches", "crouch": "crouches",
          "splash": "splashes", "wax": "waxes", "mix": "mixes", "fix": "fixes", "box": "boxes", "toss": "tosses",
          "pass": "passes", "dress": "dresses", "press": "presses", "miss": "misses", "kiss": "kisses",
          "bounce": "bounces", "dance": "dances"}
# words that start a verb phrase (base form); gerunds are recognised by "-ing" against this list
VERBS = frozenset("""walk run jog jump hop skip leap sit stand squat kneel crawl climb kick punch box throw catch
pick lift carry push pull drag bend bow turn spin twist pivot step sidestep stride march dance swim wave raise
reach stretch lean look lie roll fall get drink eat wash wipe sweep mop clean dig rake chop hammer saw paint
write type play shoot dribble swing golf hit bat pitch serve bowl fight block dodge duck avoid stumble trip
balance hang shake clap point salute greet hug argue talk tell yawn sneeze cough scratch brush comb put take
open close unscrew screw pour place set stack move navigate cross wander search explore sneak tiptoe limp
shuffle slide skate ski flip cartwheel handstand roll stomp bounce sway rock nod rotate circle hold grab
touch wait idle rest relax exercise lunge crouch hunch fly mimic imitate pretend act perform do make go come
return back flap jumpjacks drive steer fish cast row paddle sweep vacuum iron fold knock peek hide swat slap
high-five toss juggle spar tumble somersault flip skip prance gallop waddle skate slip cheer celebrate""".split())
_GERUND_EXCEPTIONS = {"running": "run", "sitting": "sit", "hopping": "hop", "skipping": "skip", "stepping": "step",
                      "getting": "get", "swimming": "swim", "jogging": "jog", "putting": "put", "cutting": "cut",
                      "digging": "dig", "dancing": "dance", "dribbling": "dribble", "waving": "wave",
                      "taking": "take", "making": "make", "placing": "place", "bouncing": "bounce",
                      "closing": "close", "moving": "move", "juggling": "juggle", "lying": "lie", "stumbling": "stumble",
                      "shuffling": "shuffle", "sliding": "slide", "tumbling": "tumble", "waddling": "waddle",
                      "raking": "rake", "skating": "skate", "circling": "circle", "grabbing": "grab",
                      "dragging": "drag", "shaking": "shake", "chopping": "chop", "mopping": "mop",
                      "wiping": "wipe", "hammering": "hammer", "writing": "write", "drumming": "drum",
                      "planting": "plant", "sweeping": "sweep", "throwing": "throw", "balancing": "balance",
                      "posing": "pose", "rotating": "rotate", "breathing": "breathe", "leaning": "lean",
                      "striding": "stride", "serving": "serve", "squatting": "squat", "stretching": "stretch",
                      "lunging": "lunge", "sneaking": "sneak", "tiptoeing": "tiptoe", "swinging": "swing",
                      "batting": "bat", "bowling": "bowl", "boxing": "box"}

_TAGS = re.compile(r"\b(cleaned\s*grs?|cleaned\s*grs|gr?s?cleaned)\b", re.I)
_PAREN = re.compile(r"\((?:\d+ subjects?[^)]*|human subject)\)", re.I)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def clean_label(label: str) -> str:
    """Step 1 + 2: lower-case words, no take numbers, tags, brackets; abbreviations expanded."""
    s = _PAREN.sub(" ", label)
    s = re.sub(r"CleanedGRs?|Cleaned\s*GRS?|GRS\b", " ", s, flags=re.I)
    s = s.replace("_", " ")
    s = _CAMEL.sub(" ", s)
    s = re.sub(r"\b0*\d{2,3}\s*$", " ", s.strip()) if not re.fullmatch(r"\s*\d+\s*", s) else s  # trailing take no.
    s = re.sub(r"(?<=[a-z])/(?=[a-z])", " or ", s, flags=re.I)
    s = s.lower()
    words = []
    for w in re.findall(r"[a-z][a-z'\-]*|\d+(?:\.\d+)?|[,;.]", s):
        words.append(_ABBREVIATIONS.get(w, w))
    out = " ".join(words)
    out = re.sub(r"\s+([,;.])", r"\1", out)
    return re.sub(r"\s+", " ", out).strip(" ,;.")


def _third_person(verb: str) -> str:
    if verb in _THIRD:
        return _THIRD[verb]
    if re.search(r"(s|sh|ch|x|z)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def _base_of(word: str) -> str | None:
    """The base verb of `word` if it starts a verb phrase (base form or gerund), else None."""
    if word in _GERUND_EXCEPTIONS:
        return _GERUND_EXCEPTIONS[word]
    if word in VERBS:
        return word
    if word.endswith("ing") and len(word) > 5:
        stem = word[:-3]
        for cand in (stem, stem + "e"):
            if cand in VERBS:
                return cand
        if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
            return stem[:-1]                                   # "sipping" -> "sip"
        return stem                                            # "crying" -> "cry", "laughing" -> "laugh"
    return None


_NOUN_PHRASES = ("jumping jacks", "high jump", "long jump", "sun salutation", "side twists", "push ups", "sit ups")


def _phrase(item: str) -> str:
    """Step 5 for one item: a third-person verb phrase."""
    words = item.split()
    if not words:
        return ""
    if any(item.startswith(n) for n in _NOUN_PHRASES):
        return f"does {item}"
    base = _base_of(words[0])
    if base is not None:
        out = [_third_person(base)]
        for prev, w in zip(words, words[1:]):                  # "punch and kick" -> "punches and kicks"
            out.append(_third_person(w) if prev == "and" and w in VERBS else w)
        return " ".join(out)
    last = _base_of(words[-1]) if words[-1].endswith("ing") else None
    if last is not None:                                       # "left front kicking" -> "does a left front kick"
        return "does a " + " ".join(words[:-1] + [last])
    # "jumping jacks", "salsa dance", "basketball signals": a noun phrase
    if len(words) >= 2 and _base_of(words[-1]) is not None and words[-1] in VERBS:
        return f"does a {item}" if not item.endswith("s") else f"does {item}"
    return f"does {item}" if item.endswith("s") else f"does a {item}" if len(words) > 1 else f"does {item}"


def describe(label: str) -> str | None:
    """One dataset label -> one plain sentence, or None when the label carries no motion information.

    >>> describe("JumpForward")
    'a person jumps forward'
    >>> describe("walking backwards")
    'a person walks backwards'
    >>> describe("Story") is not None, describe("Alaskan vacation")
    (True, None)
    """
    raw = label.strip()
    low = raw.lower().rstrip(".")
    if re.search(r"\(2 subjects", raw) and re.search(r"\b[AB]\b", re.sub(r"\(.*?\)", "", raw)):
        return None       # two-person interactions told with roles ("A pulls B; B resists"): no single-body text
    animal = re.search(r"^(.*)\(human subject\)", raw, re.I)
    if animal and clean_label(animal.group(1)):
        return f"a person moves like a {clean_label(animal.group(1))}"
    if low.startswith(("a person", "someone", "a man", "a woman", "the person", "a human")):
        return raw.rstrip(".") if not raw.endswith(".") else raw[:-1]      # already a sentence (Bandai Namco)
    text = clean_label(raw)
    if not text or not re.search(r"[a-z]", text) and text not in _REWRITES:
        return _REWRITES.get(text)
    if text in _REWRITES:
        return _REWRITES[text]
    if text in UNINFORMATIVE or re.fullmatch(r"[\d. ]+(pound|pounds)?", text):
        return None
    # 4. "topic - a, b" -> "a, b"
    if " - " in label:
        head, _, rest = clean_label(label.replace(" - ", " ; ")).partition(";")
        text = rest.strip() or head.strip()
    text = text.replace(";", ",")
    items = [i.strip() for i in re.split(r",|\band then\b|\bthen\b", text) if i.strip()]
    phrases = [p for p in (_phrase(i) for i in items) if p]
    if not phrases:
        return None
    return "a person " + ", then ".join(phrases)
