"""The bounded hand-over between paho's network thread and ingest's store workers."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Incoming:
    """One frame message as paho delivered it."""

    topic: str
    payload: bytes
    received_time: float


class Inbox:
    """A FIFO bounded by message count and payload bytes; ``put`` waits for room (back-pressure on the broker)."""

    def __init__(self, max_messages: int, max_bytes: int):
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self._items: deque[Incoming] = deque()
        self._bytes = 0
        self._closed = False
        # Two conditions on one lock, each woken one waiter at a time: a put wakes one store worker, not all
        # sixteen (the rest would only find the inbox empty again and cost a thread switch each).
        lock = threading.Lock()
        self._has_items, self._has_room = threading.Condition(lock), threading.Condition(lock)

    def put(self, item: Incoming, timeout_s: float) -> bool:
        """Queue ``item``, waiting up to ``timeout_s`` for room; False when full or closed."""
        size = len(item.payload)
        deadline = time.monotonic() + timeout_s
        with self._has_room:
            # An empty inbox always takes one message, so a frame larger than max_bytes still gets through.
            while not self._closed and self._items and (len(self._items) >= self.max_messages
                                                        or self._bytes + size > self.max_bytes):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._has_room.wait(left)
            if self._closed:
                return False
            self._items.append(item)
            self._bytes += size
            self._has_items.notify()
            return True

    def get(self, timeout_s: float) -> Incoming | None:
        """The oldest message, waiting up to ``timeout_s``; None when none came or the inbox is closed."""
        deadline = time.monotonic() + timeout_s
        with self._has_items:
            while not self._items and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._has_items.wait(left)
            if self._closed or not self._items:
                return None
            item = self._items.popleft()
            self._bytes -= len(item.payload)
            self._has_room.notify()  # only paho's thread puts
            if self._items:
                self._has_items.notify()  # a notify that met no waiter is lost; pass the wake-up on
            return item

    def close(self) -> None:
        """Wake every waiter; later puts and gets return at once. Queued messages stay unacked."""
        with self._has_items:
            self._closed = True
            self._has_items.notify_all()
            self._has_room.notify_all()

    def open(self) -> None:
        """Accept messages again (after a stop and start), dropping what a previous run left."""
        with self._has_items:
            self._items.clear()
            self._bytes = 0
            self._closed = False

    def depth(self) -> tuple[int, int]:
        """Messages and payload bytes waiting."""
        with self._has_items:
            return len(self._items), self._bytes
