"""Servers and endpoints that the lab, a bench or a test starts end with it, even when it is killed (SIGKILL, the
OOM killer): on Linux the kernel sends them SIGTERM when their parent dies. Without it they ran on for good."""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1
# resolved once here, in the parent: the child, between fork and exec, only calls it
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def end_with_parent() -> None:
    """A ``preexec_fn`` for ``subprocess.Popen``: SIGTERM to the child when the thread that started it ends (the
    main thread, in the lab and the benches). Nothing where the platform has no such request."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


__all__ = ["end_with_parent"]
