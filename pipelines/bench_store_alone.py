"""The store alone, for ``edgeloop bench ingest``: ingest's own writes, with no broker, no MQTT and no endpoints.

Threads write frames through ingest's ``FrameWriter`` (the conditional JPEG, then the ``.json`` marker), so the
store sees exactly the requests ingest makes. The store process's CPU per frame is the ceiling it alone sets on
frames/s when it shares the machine: ``cores x 1000 / store ms per frame``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class StoreAloneRow:
    frames: int
    wall_s: float
    writer_cpu_ms_per_frame: float  # this process: FrameWriter and the S3 client
    store_cpu_ms_per_frame: float  # the store's process

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s

    @property
    def store_cap_frames_per_s(self) -> float:
        """Frames/s at which the store alone would use every core of this machine."""
        return (os.cpu_count() or 1) * 1000 / self.store_cpu_ms_per_frame


def write_frames(store, store_pid: int, jpegs: list[bytes], size: tuple[int, int], frames: int,
                 threads: int) -> StoreAloneRow:
    """Write ``frames`` new frames from ``threads`` threads; every one must be stored (not a duplicate)."""
    from edge.frame_index import FrameRecord
    from edge.ingest_writer import FrameWriter, Outcome
    from endpoint.wire import protocol
    from pipelines.bench_ingest import _proc_cpu_s

    endpoint_id = f"alone-{uuid.uuid4().hex[:6]}"
    records = [FrameRecord.from_header(protocol.make_frame_header(
        jpegs[i % len(jpegs)], endpoint_id=endpoint_id, frame_id=f"f{i:07d}", capture_time=0.0, round=0,
        model_version="bench", width=size[0], height=size[1]), received_time=0.0) for i in range(frames)]
    failures: list[str] = []
    writer = FrameWriter(store, threading.Event(), retry_initial_s=0.05, retry_max_s=1.0,
                         on_store_error=lambda: failures.append("store error"))

    def work(first: int) -> None:
        for i in range(first, frames, threads):
            outcome = writer.write(records[i], jpegs[i % len(jpegs)])
            if outcome is not Outcome.STORED:
                failures.append(f"{records[i].frame_id}: {outcome.value}")

    workers = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads)]
    cpu0, store0, wall0 = time.process_time(), _proc_cpu_s(store_pid), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall_s = time.perf_counter() - wall0
    cpu_s, store_cpu_s = time.process_time() - cpu0, _proc_cpu_s(store_pid) - store0
    if failures:
        raise RuntimeError(f"store alone: {len(failures)} frames not stored cleanly, first: {failures[0]}")
    per_frame_ms = 1000 / frames
    return StoreAloneRow(frames, wall_s, cpu_s * per_frame_ms, store_cpu_s * per_frame_ms)
