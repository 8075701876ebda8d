"""Builds and loads the C selective-scan kernel (kmm/ops/scan_cpu.c) for the CPU inference path.

The kernel is plain C (no torch headers), compiled once per machine with the system compiler (`$CC`, else
`cc` / `gcc`; about a second) into a cache folder (`$KMM_CACHE_DIR`, else `$XDG_CACHE_HOME/kmm`, else
`~/.cache/kmm`), keyed by the source, the compiler and the CPU, and loaded with ctypes. `load()` returns
None — and kmm.ops.scan falls back to pure PyTorch — when there is no compiler, the build fails, the
platform is not Linux/macOS x86-64/arm64, or `KMM_NO_C_KERNEL=1` is set. It never raises.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("scan_cpu.c")
ABI_VERSION = 2
_LIB: ctypes.CDLL | None | bool = None   # None: not tried yet; False: unavailable
_LOCK = threading.Lock()


def cache_dir() -> Path:
    if os.environ.get("KMM_CACHE_DIR"):
        return Path(os.environ["KMM_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kmm"


def _compiler() -> str | None:
    for name in filter(None, (os.environ.get("CC"), "cc", "gcc", "clang")):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cpu_tag() -> str:
    """The CPU's feature flags (so a cache shared between machines never loads a -march=native build
    compiled for another CPU)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _flags() -> list[str]:
    # -ffast-math lets gcc call glibc's vector expf (libmvec); the results differ from torch's exp at float
    # rounding level only (tests/test_scan.py bounds it)
    flags = ["-O3", "-ffast-math", "-shared", "-fPIC", "-std=gnu99"]
    if platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64"):
        flags.append("-march=native" if platform.machine() in ("x86_64", "AMD64") else "-mcpu=native")
    if " avx512f " in f" {_cpu_tag()} ":   # gcc defaults to 256-bit vectors even where 512-bit ones exist
        flags.append("-mprefer-vector-width=512")
    return flags


def _build(cc: str) -> Path:
    source = SOURCE.read_bytes()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256(b"\0".join([source, version.encode(), _cpu_tag().encode(), " ".join(_flags()).encode(),
                                     str(ABI_VERSION).encode()])).hexdigest()[:16]
    folder = cache_dir()
    lib = folder / f"scan_cpu-{key}.so"
    if lib.is_file():
        return lib
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise OSError(f"{folder} is not writable")
    except OSError:   # read-only home (some Spaces): a private temporary folder instead
        folder = Path(tempfile.gettempdir()) / f"kmm-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
        folder.mkdir(parents=True, exist_ok=True)
        lib = folder / lib.name
        if lib.is_file():
            return lib
    # build into a private temporary file, then rename: concurrent processes never load a half-written library
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *_flags(), str(SOURCE), "-o", tmp, "-lm", "-lpthread"], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip()[-500:])
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return lib


def load() -> ctypes.CDLL | None:
    """The loaded kernel library, or None when it cannot be built here (cached either way)."""
    global _LIB
    if _LIB is not None:
        return _LIB or None
    with _LOCK:
        if _LIB is not None:
            return _LIB or None
        _LIB = False
        cc = _compiler()
        if os.environ.get("KMM_NO_C_KERNEL") == "1" or cc is None or platform.system() not in ("Linux", "Darwin"):
            return None
        try:
            lib = ctypes.CDLL(str(_build(cc)))
            if lib.kmm_abi_version() != ABI_VERSION:
                raise RuntimeError("stale library")
            i64, ptr, cint = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
            lib.kmm_scan_fwd.argtypes = ([i64] * 5 + [ptr, i64, i64, i64] * 2 + [ptr] + [ptr, i64, i64, i64, i64] * 2
                                         + [ptr, ptr, i64, i64, i64, ptr, cint, ptr, ptr, ptr, cint])
            lib.kmm_conv_silu.argtypes = [i64] * 5 + [ptr, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, cint]
            lib.kmm_scan_fwd.restype = lib.kmm_conv_silu.restype = cint
            _LIB = lib
        except Exception as e:  # noqa: BLE001 - any build/load failure means "use the PyTorch path"
            warnings.warn(f"C selective-scan kernel unavailable ({e}); using the PyTorch CPU path")
    return _LIB or None


def _ptr(t):
    return None if t is None else t.data_ptr()


def _view(x, goff):
    """(b, L, cols) float32 with unit column stride -> (ptr, s_b, s_t, s_g): group g starts at column g·goff."""
    if x is None:
        return [None, 0, 0, 0]
    if x.dtype != torch.float32 or x.stride(-1) != 1 or x.device.type != "cpu":
        raise ValueError("kernel inputs must be float32 CPU tensors with unit channel stride")
    return [x.data_ptr(), x.stride(0), x.stride(1), goff]


_REVERSE: dict[tuple, torch.Tensor] = {}   # reverse flags -> their int32 tensor (the same few every call)


def _lengths_and_reverse(lengths, reverse, G, L):
    lens = None if lengths is None else lengths.to(torch.int64).clamp(0, L).contiguous()   # never read past L
    rev = None
    if reverse is not None:
        key = tuple(int(bool(r)) for r in reverse)
        rev = _REVERSE.get(key)
        if rev is None:
            rev = _REVERSE[key] = torch.tensor(key, dtype=torch.int32)
    if rev is not None and len(rev) != G:
        raise ValueError(f"reverse needs one flag per group ({G})")
    return lens, rev


def scan_fwd(u, delta, A_t, B, C, D, z, bias, softplus: bool, *, groups: int = 1, offsets=None, lengths=None,
             reverse=None, threads: int = 1):
    """Forward selective scan, channels-last, G = `groups` groups of Dg channels.

    u, delta, z: (b, L, ≥ G·Dg); B, C: (b, L, ≥ G·N); unit stride over the last axis, any other strides.
    Group g of each reads columns from g·offset (`offsets` dict with keys u/delta/z/B/C; default Dg or N, i.e.
    contiguous groups). A_t (N, G·Dg); D, bias (G·Dg,) or None; lengths (b,) valid steps (default L);
    reverse: one flag per group (scan the valid part backward in time) -> y (b, L, G·Dg) contiguous.
    """
    lib = load()
    batch, L = u.shape[:2]
    N, Dall = A_t.shape
    Dg = Dall // groups
    off = {"u": Dg, "delta": Dg, "z": Dg, "B": N, "C": N, **(offsets or {})}
    A_t, D, bias = (None if t is None else t.float().contiguous() for t in (A_t, D, bias))
    lens, rev = _lengths_and_reverse(lengths, reverse, groups, L)
    y = torch.empty(batch, L, Dall, dtype=torch.float32)
    vB, vC = _view(B, off["B"]), _view(C, off["C"])
    rc = lib.kmm_scan_fwd(batch, L, groups, Dg, N, *_view(u, off["u"]), *_view(delta, off["delta"]), _ptr(A_t),
                          *vB, B.stride(2), *vC, C.stride(2), _ptr(D), *_view(z, off["z"]), _ptr(bias),
                          int(softplus), _ptr(lens), _ptr(rev), _ptr(y), int(threads))
    if rc != 0:
        raise MemoryError("selective scan kernel: out of memory")
    return y


def conv_silu(x, weight, bias, *, groups: int = 1, offset=None, lengths=None, reverse=None, threads: int = 1,
              weight_t=None):
    """Depthwise causal convolution + SiLU, channels-last. x (b, L, ≥ G·Dg), group g from column g·offset
    (default Dg); weight (G·Dg, 1, K) as nn.Conv1d stores it (or `weight_t`, the same as (K, G·Dg) float32
    contiguous, cached by the caller); bias (G·Dg,) -> y (b, L, G·Dg) contiguous.
    Groups flagged in `reverse` convolve backward in time within each sequence's valid length."""
    lib = load()
    batch, L = x.shape[:2]
    Dall, _, K = weight.shape
    Dg = Dall // groups
    w_t = weight.float().reshape(Dall, K).t().contiguous() if weight_t is None else weight_t     # (K, G·Dg)
    bias = None if bias is None else bias.float().contiguous()
    lens, rev = _lengths_and_reverse(lengths, reverse, groups, L)
    y = torch.empty(batch, L, Dall, dtype=torch.float32)
    rc = lib.kmm_conv_silu(batch, L, groups, Dg, K, *_view(x, Dg if offset is None else offset), _ptr(w_t),
                           _ptr(bias), _ptr(lens), _ptr(rev), _ptr(y), int(threads))
    if rc != 0:
        raise MemoryError("convolution kernel: out of memory")
    return y
