"""Publish a weights bundle to the Hugging Face Hub (`python -m kmm push-to-hub BUNDLE --repo USER/NAME`).

    files, problems = plan_upload("assets/kmm")        # what would go up, and what is wrong (empty = ready)
    sha = push_to_hub("assets/kmm", "acme/kmm")         # -> the commit to pin in KMM_MODEL_REVISION

Checks before anything is sent (the same ones `--dry-run` prints):
1. the bundle loads on the download side: `kmm.hub.push_layout_check` (every model folder's config.json +
   model.safetensors, normalizer.safetensors, README.md);
2. every model.safetensors has a config.json next to it;
3. no pickles (.pt/.pth/.ckpt/.pkl/.pickle/.bin files whose bytes are a pickle or a torch zip archive):
   loading one runs code;
4. no file over `MAX_FILE_BYTES` (50 MB);
5. the model card (README.md) opens with YAML front matter that names a `license`, has a section about the
   training data (a heading with "data"), and a licence or credit line in its text.
Optimiser states and trainer state (checkpoint leftovers) are never uploaded.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

from kmm.errors import PublishError  # noqa: F401  (defined in kmm/errors.py; this name kept)
from kmm.hub import REVISION_ENV, REPO_ENV, push_layout_check

MAX_FILE_BYTES = 50 * 1024 * 1024
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")
SKIPPED_NAMES = ("optimizer.safetensors", "trainer_state.json")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_pickle(path: Path) -> bool:
    """True if the file's bytes are a pickle (protocol 2+ opcode) or a torch zip archive holding one."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                return any(n.endswith(".pkl") for n in z.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def card_problems(card: Path) -> list[str]:
    """What the model card lacks for publication (empty list: fine)."""
    if not card.is_file():
        return [f"missing {card.name} (model card)"]
    text = card.read_text(encoding="utf-8", errors="replace")
    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not m:
        return [f"{card.name}: no YAML front matter (a '---' block at the top with at least `license:`)"]
    import yaml

    problems = []
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as e:
        return [f"{card.name}: front matter is not valid YAML ({e.__class__.__name__})"]
    if not isinstance(meta, dict) or not str(meta.get("license") or "").strip():
        problems.append(f"{card.name}: front matter has no `license:` (e.g. cc-by-nc-4.0, apache-2.0, other)")
    body = text[m.end():]
    if not re.search(r"^#{1,6}\s.*\bdata", body, re.I | re.M):
        problems.append(f"{card.name}: no training-data section (a heading such as '## Training data')")
    if not re.search(r"\b(licen[cs]e|credits?)\b", body, re.I):
        problems.append(f"{card.name}: no licence or credit line for the training data in the text")
    return problems


def plan_upload(bundle: str | Path) -> tuple[list[tuple[str, int]], list[str]]:
    """-> ([(relative path, bytes)] that would be uploaded, [problems]); nothing is sent."""
    root = Path(bundle)
    if not root.is_dir():
        return [], [f"{root}: bundle folder not found"]
    files: list[tuple[str, int]] = []
    problems = list(push_layout_check(root))
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in Path(rel).parts) or path.name in SKIPPED_NAMES:
            continue
        size = path.stat().st_size
        if path.suffix.lower() in PICKLE_SUFFIXES and is_pickle(path):
            problems.append(f"{rel}: a pickle (loading it runs code); save tensors as .safetensors")
        if size > MAX_FILE_BYTES:
            problems.append(f"{rel}: {size / 2**20:.1f} MB, over the {MAX_FILE_BYTES // 2**20} MB limit per file")
        if path.name == "model.safetensors" and not (path.parent / "config.json").is_file():
            problems.append(f"{rel}: no config.json next to it (the model cannot be rebuilt)")
        files.append((rel, size))
    problems += card_problems(root / "README.md")
    return files, list(dict.fromkeys(problems))


def push_to_hub(bundle: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
                message: str | None = None) -> str:
    """Validate, create the repo if needed, upload exactly the planned files; -> the commit sha."""
    if not _REPO_ID.match(repo_id or ""):
        raise PublishError(f"--repo {repo_id!r}: expected USER/NAME")
    files, problems = plan_upload(bundle)
    if problems:
        raise PublishError("not published:\n  " + "\n  ".join(problems))
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(bundle), repo_type="model",
                             allow_patterns=[rel for rel, _ in files],
                             commit_message=message or f"Upload KMM weights bundle ({len(files)} files)")
    sha = getattr(info, "oid", None)
    if not sha:
        raise PublishError(f"upload to {repo_id} returned no commit id ({info!r})")
    return sha


def pin_lines(repo_id: str, sha: str) -> str:
    """The environment lines that make the app load exactly this upload (kmm/hub.py)."""
    return f"{REPO_ENV}={repo_id}\n{REVISION_ENV}={sha}"


def format_plan(files: list[tuple[str, int]]) -> str:
    width = max((len(rel) for rel, _ in files), default=4)
    lines = [f"{rel:<{width}}  {size / 2**20:9.2f} MB" for rel, size in files]
    total = sum(size for _, size in files)
    lines.append(f"{len(files)} files, {total / 2**20:.2f} MB")
    return "\n".join(lines)
