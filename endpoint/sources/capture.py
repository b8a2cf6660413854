"""A capture thread that reads frames ahead of the detector into a small bounded queue."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Generic, Iterable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class FrameQueue(Generic[T]):
    """Bounded FIFO; when full, ``put`` drops the oldest item (live sources) or waits for room (files)."""

    def __init__(self, capacity: int, drop_oldest: bool):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity, self.drop_oldest = capacity, drop_oldest
        self.dropped = 0
        self._items: deque[T] = deque()
        self._closed = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    def put(self, item: T) -> bool:
        """Queue ``item``; False once the queue is closed (the consumer stopped)."""
        with self._cond:
            while not self._closed and len(self._items) >= self.capacity and not self.drop_oldest:
                self._cond.wait()
            if self._closed:
                return False
            if len(self._items) >= self.capacity:
                self._items.popleft()  # a real-time camera: the newest frame is worth more than the oldest
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout_s: float) -> tuple[bool, T | None]:
        """(True, item), or (True, None) after ``timeout_s``, or (False, None) once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return True, item
            if self._closed:
                if self._error is not None:
                    raise self._error
                return False, None
            return True, None

    def close(self, error: BaseException | None = None) -> None:
        """No more items: waiting producers return, the consumer drains what is left, then sees the end."""
        with self._cond:
            self._closed = True
            self._error = self._error or error
            self._cond.notify_all()

    def discard(self) -> None:
        """Close and forget what is queued (the consumer is stopping)."""
        with self._cond:
            self._items.clear()
        self.close()


class CaptureThread(Generic[T]):
    """Pulls ``frames`` on its own thread into a ``FrameQueue``; an error in the source reaches ``get``."""

    def __init__(self, frames: Iterable[T], capacity: int, drop_oldest: bool):
        self.queue: FrameQueue[T] = FrameQueue(capacity, drop_oldest)
        self.finished = threading.Event()  # the source ended or failed; every frame it gave is queued or dropped
        self._frames = frames
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    def start(self) -> CaptureThread[T]:
        self._thread.start()
        return self

    def get(self, timeout_s: float) -> tuple[bool, T | None]:
        return self.queue.get(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading; the source (a camera, say) is released when the thread leaves its loop."""
        self.queue.discard()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        error: BaseException | None = None
        iterator = iter(self._frames)
        try:
            for frame in iterator:
                if not self.queue.put(frame):
                    break
        except Exception as exc:  # a source that fails (a camera unplugged) ends the stream with its error
            log.error("frame source failed: %s", exc)
            error = exc
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator's finally blocks release the camera or file now, on this thread
            self.queue.close(error)
            self.finished.set()
