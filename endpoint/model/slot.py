"""The running detector behind a lock: every call gets a fully loaded model, swaps never drop a frame."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


class ModelSlot:
    """Holds (detector, version, path, serial); ``swap`` loads the new model before replacing the old."""

    def __init__(self, load_fn: Callable[[Path], Any], model_path: str | Path, version: str, serial: int = 0):
        self._load_fn = load_fn
        self._lock = threading.Lock()  # guards the (detector, version, path, serial) tuple
        self._swap_lock = threading.Lock()  # one swap at a time; detection never waits on it
        path = Path(model_path)
        self._current = (load_fn(path), version, path, serial)

    @property
    def version(self) -> str:
        with self._lock:
            return self._current[1]

    @property
    def model_path(self) -> Path:
        with self._lock:
            return self._current[2]

    @property
    def serial(self) -> int:
        """The signed serial of the running model (0 for a starting model without a signed sidecar)."""
        with self._lock:
            return self._current[3]

    def current(self) -> tuple[Any, str]:
        """The detector and its version, read together."""
        with self._lock:
            return self._current[0], self._current[1]

    def detect(self, image: Any) -> Any:
        """Run ``detector.detect(image)`` on the model current when the call began."""
        detector, _ = self.current()
        # Outside the lock: a swap only replaces the reference, this call keeps its detector alive.
        return detector.detect(image)

    def swap(self, new_path: str | Path, version: str, serial: int = 0) -> None:
        """Load ``new_path`` and make it current; if loading raises, the old model stays and it re-raises."""
        new_path = Path(new_path)
        with self._swap_lock:
            detector = self._load_fn(new_path)
            with self._lock:
                old_version = self._current[1]
                self._current = (detector, version, new_path, serial)
        log.info("model %s swapped in for %s (%s)", version, old_version or "no model", new_path)
