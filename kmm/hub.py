"""Where the weights come from: a pinned Hugging Face Hub snapshot, else the bundled folder.

    path, source = resolve_weights()          # env KMM_MODEL_REPO + KMM_MODEL_REVISION, else assets/kmm
    pipe = Pipeline.from_pretrained(path)      # `source` is a sentence for the UI / logs

Rules: nothing is fetched at import; a repo without an explicit revision is refused (a Space must not
change behaviour when someone pushes to `main`); any Hub, network or offline failure, and any snapshot
with a missing or unreadable file, falls back to the bundled folder (env KMM_WEIGHTS, default
`assets/kmm`) and the description says why. The environment is read at call time, so tests and the CLI
can set HF_HUB_OFFLINE / HF_HUB_CACHE / KMM_* right before calling.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ENV, REVISION_ENV, WEIGHTS_ENV = "KMM_MODEL_REPO", "KMM_MODEL_REVISION", "KMM_WEIGHTS"
DEFAULT_WEIGHTS = "assets/kmm"

MODEL_DIRS = ("tokenizer", "residual", "kmm", "kmm-random", "transformer", "bamm", "motion-vae", "motion-mamba")
REQUIRED_DIRS = ("tokenizer", "kmm")   # a bundle needs these; every other model folder is optional, whole if present
BUNDLE_FILES = ("normalizer.safetensors",) + tuple(
    f"{d}/{name}" for d in REQUIRED_DIRS for name in ("config.json", "model.safetensors"))
ALLOW_PATTERNS = ["normalizer.safetensors", "*/config.json", "*/model.safetensors", "README.md", "pipeline.json",
                  "vocabulary.json", "vocabulary.safetensors"]
_MAX_HEADER_BYTES = 100 * 1024 * 1024   # the safetensors format's own limit


def bundled_weights_dir(local_dir: str | Path | None = None) -> Path:
    """The folder shipped with the Space: `local_dir`, else env KMM_WEIGHTS, else `<repo>/assets/kmm`."""
    path = Path(local_dir or os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS).expanduser()
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    return path


def check_safetensors_header(path: str | Path) -> str | None:
    """None if `path` starts with a well-formed safetensors header whose tensors fit in the file, else why not.

    Reads only the header (8-byte little-endian length + JSON), so it is cheap on large files.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                return f"{path.name}: file too short ({size} bytes) to be safetensors"
            (n,) = struct.unpack("<Q", prefix)
            if n > min(_MAX_HEADER_BYTES, size - 8):
                return f"{path.name}: header length {n} does not fit in a {size}-byte file"
            header = json.loads(fh.read(n))
    except OSError as e:
        return f"{path.name}: cannot read ({e})"
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"{path.name}: header is not valid JSON ({e.__class__.__name__})"
    if not isinstance(header, dict):
        return f"{path.name}: header is not a JSON object"
    data_bytes = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= data_bytes):
            return f"{path.name}: tensor {name!r} lies outside the file (truncated?)"
    return None


def bundle_problems(path: str | Path, files=BUNDLE_FILES) -> list[str]:
    """What is wrong with a weights folder: missing files, unparsable config.json or safetensors headers.

    >>> bundle_problems("/nonexistent")
    ['/nonexistent: folder not found']
    """
    root = Path(path)
    if not root.is_dir():
        return [f"{root}: folder not found"]
    problems = []
    optional = [f"{d}/{name}" for d in MODEL_DIRS if d not in REQUIRED_DIRS and (root / d).is_dir()
                for name in ("config.json", "model.safetensors")]
    for rel in list(files) + [f for f in optional if f not in files]:
        f = root / rel
        if not f.is_file():
            problems.append(f"missing {rel}")
        elif rel.endswith(".safetensors"):
            why = check_safetensors_header(f)
            if why:
                problems.append(f"corrupt {rel}: {why}")
        elif rel.endswith(".json"):
            try:
                json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                problems.append(f"corrupt {rel}: {e.__class__.__name__}")
    return problems


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the Hub did not give us the snapshot" (network, offline, auth, validation)."""
    errors: tuple[type[BaseException], ...] = (OSError, ValueError)  # HfHubHTTPError, LocalEntryNotFound, ...
    for module in ("httpx2", "httpx", "requests"):  # transport errors that are not OSErrors
        try:
            mod = __import__(module)
        except ImportError:
            continue
        base = getattr(mod, "HTTPError", None) or getattr(getattr(mod, "exceptions", None), "RequestException", None)
        if isinstance(base, type) and issubclass(base, BaseException):
            errors += (base,)
    return errors


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _short(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or e.__class__.__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def resolve_weights(repo_id: str | None = None, revision: str | None = None, local_dir: str | Path | None = None,
                    *, cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """-> (weights folder, one-sentence description of where it came from).

    repo_id / revision default to env KMM_MODEL_REPO / KMM_MODEL_REVISION; cache_dir to env HF_HUB_CACHE
    (read now, not at import); env HF_HUB_OFFLINE=1 means "use the local HF cache only".
    Never raises for Hub trouble: falls back to the bundled folder and says so.
    """
    bundled = bundled_weights_dir(local_dir)
    repo_id = repo_id or os.environ.get(REPO_ENV) or None
    revision = revision or os.environ.get(REVISION_ENV) or None

    def fallback(reason: str) -> tuple[Path, str]:
        note = "" if bundled.is_dir() else " — folder missing!"
        return bundled, f"bundled weights {bundled}{note} ({reason})"

    if not repo_id:
        return fallback(f"no {REPO_ENV} set")
    if not revision:
        return fallback(f"{REPO_ENV}={repo_id} has no pinned revision: set {REVISION_ENV} to a commit hash or tag; "
                        "refusing an unpinned download")

    from huggingface_hub import snapshot_download  # here, not at import: importing kmm must not touch the Hub

    cache_dir = cache_dir or os.environ.get("HF_HUB_CACHE") or None
    offline = _env_true("HF_HUB_OFFLINE")
    try:
        path = Path(snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS,
                                      cache_dir=cache_dir, local_files_only=offline))
    except _hub_errors() as e:
        return fallback(f"Hub unavailable for {repo_id}@{revision}: {e.__class__.__name__}: {_short(e)}")
    problems = bundle_problems(path)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; … ({len(problems) - 3} more)" if len(problems) > 3 else "")
        return fallback(f"Hub snapshot {repo_id}@{revision} is incomplete or corrupt: {shown}")
    mode = "local HF cache, offline" if offline else "Hugging Face Hub"
    return path, f"{repo_id}@{revision} ({mode})"


def push_layout_check(path: str | Path) -> list[str]:
    """What a folder still needs before `push_to_hub` (empty list: ready).

    Needs normalizer.safetensors, config.json + model.safetensors in every model subfolder (all parse),
    and a README.md model card.
    """
    root = Path(path)
    problems = bundle_problems(root)
    if root.is_dir() and not (root / "README.md").is_file():
        problems.append("missing README.md (model card: license, training data, intended use)")
    return problems
