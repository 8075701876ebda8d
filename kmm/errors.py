"""Every error the library raises on purpose, in one module that imports nothing of ours.

Each is an error a person can act on: the message says what is wrong and, where it can, what to do.
Front ends catch these (the CLI prints `error: <message>` and exits 2; the app shows the message) and let
every other exception crash with its traceback. The modules that raise them re-export their names
(`from kmm.data import DataError` keeps working).
"""
from __future__ import annotations


class CliError(Exception):
    """A user-facing error of a command: printed as one `error: ...` line, exit code 2.

    Library code that a command calls (evaluation, benchmarks, reports) raises it too, for a request that
    cannot run (missing weights, an unknown model name)."""


class DataError(ValueError):
    """A dataset folder is missing or malformed; the message names the path."""


class WeightsError(ValueError):
    """A weights folder is missing, incomplete or corrupt."""


class TimelineError(ValueError):
    """A prompt or timeline the generator should not be asked to run; the message is for the user."""


class PublishError(ValueError):
    """The bundle or the repo id cannot be published; the message lists every problem."""


class ClipError(ValueError):
    """One input file cannot be imported; the message names the file and the reason."""


class BvhError(ValueError):
    """A BVH file cannot be read; the message names the file and what is wrong."""


class DistributedError(RuntimeError):
    """A distributed set-up that cannot work (e.g. a batch that does not split evenly across ranks)."""


class RenderError(RuntimeError):
    """The OpenGL backend could not start; the message says what to install."""


class SmplUnavailable(RuntimeError):
    """SMPL was asked for but the model files or the smplx package are missing."""


class ControlError(ValueError):
    """A key pose or root path the generator cannot be asked to follow (kmm.control); the message is for the user."""
