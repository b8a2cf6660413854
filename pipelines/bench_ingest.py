"""``edgeloop bench ingest``: steady-state frames/s from many endpoint identities through Mosquitto into SeaweedFS.

A separate publisher process plays the fleet: one MQTT client per endpoint identity, each
keeping ``--window`` frames unacked, like the endpoint uplink. Ingest runs in this process, so
its CPU time is this process's. At the end the store is listed: every frame sent must be there
exactly once (one ``.jpg``, one ``.json``), and written once.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import struct
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DISTINCT_JPEGS = 32  # frames cycle through these; ids differ, so each is its own object
JPEG_QUALITY = 85  # the endpoint's default: 320x240 synthetic frames come out near 27 kB
RESEND_AFTER_S = 5.0  # an unacked frame is re-sent after this, as the endpoint uplink does
DRAIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LoadResult:
    """What the publisher process saw."""

    sent_ids: dict[str, list[str]]
    acked: int
    refused: int
    resent: int
    latencies_ms: list[float]
    elapsed_s: float
    jpeg_bytes: int
    cpu_s: float


@dataclass(frozen=True)
class IngestBenchRow:
    stream: str
    frames: int
    wall_s: float
    frames_per_s: float
    mb_per_s: float
    ack_p50_ms: float
    ack_p99_ms: float
    ingest_cpu_ms_per_frame: float
    broker_cpu_ms_per_frame: float
    s3_cpu_ms_per_frame: float
    publisher_cpu_ms_per_frame: float
    check: str

    @property
    def all_cpu_ms_per_frame(self) -> float:
        return (self.ingest_cpu_ms_per_frame + self.broker_cpu_ms_per_frame + self.s3_cpu_ms_per_frame
                + self.publisher_cpu_ms_per_frame)


class LatencyStore:
    """Adds a fixed delay to every store call, standing for a store a few milliseconds away."""

    def __init__(self, inner, latency_s: float):
        self.inner, self.latency_s = inner, latency_s

    def __getattr__(self, name):
        call = getattr(self.inner, name)
        if name not in ("put", "put_if_absent", "get", "exists", "list", "delete"):
            return call

        def delayed(*args, **kwargs):
            time.sleep(self.latency_s)
            return call(*args, **kwargs)

        return delayed


def make_jpegs(video: str | None) -> tuple[list[bytes], int, int]:
    """Distinct JPEGs to send: synthetic 320x240 frames, or frames of a real video."""
    import cv2

    images = []
    if video:
        capture = cv2.VideoCapture(video)
        while len(images) < DISTINCT_JPEGS:
            ok, image = capture.read()
            if not ok:
                break
            images.append(image)
        capture.release()
    else:
        from endpoint.sources.scenario import SyntheticScenario

        scenario = SyntheticScenario()
        images = [scenario.frame("day", i).image for i in range(DISTINCT_JPEGS)]
    if not images:
        raise RuntimeError(f"no frames read from {video}")
    jpegs = [cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes() for im in images]
    return jpegs, images[0].shape[1], images[0].shape[0]


# --- the publisher process -----------------------------------------------------------------------

def _frame_templates(endpoint_id: str, jpegs: list[bytes], width: int, height: int) -> list[dict]:
    from endpoint.wire import protocol

    return [protocol.make_frame_header(jpeg, endpoint_id=endpoint_id, frame_id="x", capture_time=0.0, round=0,
                                       model_version="bench", width=width, height=height).model_dump()
            for jpeg in jpegs]


def _payload(template: dict, frame_id: str, jpeg: bytes) -> bytes:
    from endpoint.wire import protocol

    head = json.dumps({**template, "frame_id": frame_id, "capture_time": time.time()}).encode()
    return protocol.FRAME_MAGIC + struct.pack(">I", len(head)) + head + jpeg


def _run_endpoint(port: int, endpoint_id: str, frames: int, stop_at: float, window: int, jpegs: list[bytes],
                  size: tuple[int, int], out: dict) -> None:
    """One endpoint identity: publish with at most ``window`` unacked, re-send what stays unacked."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from endpoint.wire import protocol

    templates = _frame_templates(endpoint_id, jpegs, *size)
    sent_at: dict[str, tuple[float, float, int]] = {}  # id -> (first send, last send, jpeg index)
    cond = threading.Condition()
    stats = {"acked": 0, "refused": 0, "resent": 0, "latencies_ms": [], "sent_ids": [], "jpeg_bytes": 0}

    def on_message(client, userdata, message):
        raw = json.loads(message.payload)
        now = time.monotonic()
        with cond:
            for frame_id in raw.get("frame_ids", []):
                entry = sent_at.pop(frame_id, None)
                if entry is None:
                    continue  # a second ack for a re-sent frame
                stats["latencies_ms"].append((now - entry[0]) * 1000)
                stats["acked" if raw.get("ok", True) else "refused"] += 1
            cond.notify_all()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{endpoint_id}", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(protocol.topic(endpoint_id, protocol.FEATURE_ACK), qos=1)
    subscribed.wait(10)
    topic = protocol.topic(endpoint_id, protocol.FEATURE_FRAME)

    def resend_stale() -> None:
        now = time.monotonic()
        stale = [(fid, e) for fid, e in sent_at.items() if now - e[1] > RESEND_AFTER_S]
        for frame_id, (first, _, k) in stale:
            sent_at[frame_id] = (first, now, k)
            stats["resent"] += 1
            client.publish(topic, _payload(templates[k], frame_id, jpegs[k]), qos=1)

    seq = 0
    while (frames and seq < frames) or (not frames and time.monotonic() < stop_at):
        with cond:
            if not cond.wait_for(lambda: len(sent_at) < window, timeout=1.0):
                resend_stale()
                continue
            frame_id, k = f"f{seq:08d}", seq % len(jpegs)
            sent_at[frame_id] = (time.monotonic(), time.monotonic(), k)
        client.publish(topic, _payload(templates[k], frame_id, jpegs[k]), qos=1)
        stats["sent_ids"].append(frame_id)
        stats["jpeg_bytes"] += len(jpegs[k])
        seq += 1
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    with cond:
        while sent_at and time.monotonic() < deadline:
            if not cond.wait_for(lambda: not sent_at, timeout=1.0):
                resend_stale()
    client.disconnect()
    client.loop_stop()
    out[endpoint_id] = stats


def _publisher_main(port: int, endpoint_ids: list[str], frames: int, duration_s: float, window: int,
                    jpegs: list[bytes], size: tuple[int, int], results) -> None:
    cpu0, started = time.process_time(), time.monotonic()
    out: dict[str, dict] = {}
    per_endpoint = -(-frames // len(endpoint_ids)) if frames else 0
    threads = [threading.Thread(target=_run_endpoint, args=(port, eid, per_endpoint, started + duration_s, window,
                                                             jpegs, size, out)) for eid in endpoint_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed_s = time.monotonic() - started
    results.put(LoadResult(
        sent_ids={eid: s["sent_ids"] for eid, s in out.items()}, acked=sum(s["acked"] for s in out.values()),
        refused=sum(s["refused"] for s in out.values()), resent=sum(s["resent"] for s in out.values()),
        latencies_ms=[x for s in out.values() for x in s["latencies_ms"]], elapsed_s=elapsed_s,
        jpeg_bytes=sum(s["jpeg_bytes"] for s in out.values()), cpu_s=time.process_time() - cpu0))


# --- this process: ingest, the run, the store check ------------------------------------------------

def _proc_cpu_s(pid: int | None) -> float:
    """utime + stime of a child process (the broker, SeaweedFS), 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, TypeError):
        return 0.0


def check_store(store, sent_ids: dict[str, list[str]]) -> str:
    """'ok' when every sent frame has exactly one .jpg and one .json and nothing else is there."""
    from edge import frame_keys

    problems = []
    for endpoint_id, ids in sent_ids.items():
        keys = list(store.list(frame_keys.endpoint_prefix(endpoint_id)))
        want = sorted([frame_keys.jpeg_key(endpoint_id, 0, f) for f in ids] +
                      [frame_keys.meta_key(endpoint_id, 0, f) for f in ids])
        missing, extra = set(want) - set(keys), set(keys) - set(want)
        if missing or extra or len(keys) != len(want):
            problems.append(f"{endpoint_id}: {len(missing)} missing, {len(extra)} extra")
    return "ok" if not problems else "; ".join(problems)


def bench_stream(name: str, jpegs: list[bytes], size: tuple[int, int], args, broker, s3, store) -> IngestBenchRow:
    """One timed run of the fleet against ``args.workers`` ingest instances."""
    from edge.ingest import Ingest
    from edge.ingest_config import IngestConfig
    from endpoint.wire.broker_config import BrokerConfig

    group = None if broker.kind == "amqtt" else "bench"  # amqtt has no shared subscriptions
    if group is None and args.workers > 1:
        raise SystemExit("--workers > 1 needs shared subscriptions (Mosquitto); amqtt would store every frame twice")
    run = uuid.uuid4().hex[:6]
    endpoint_ids = [f"bench-{run}-{i:03d}" for i in range(args.endpoints)]
    config = IngestConfig(broker=BrokerConfig(port=broker.port), shared_group=group, store_concurrency=args.pool_size)
    ingests = [Ingest(config, store).start() for _ in range(args.workers)]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    cpu0 = time.process_time()
    broker0, s3_0 = _proc_cpu_s(broker.process.pid), _proc_cpu_s(s3.process.pid)
    publisher = ctx.Process(target=_publisher_main, args=(broker.port, endpoint_ids, args.frames, args.duration_s,
                                                          args.window, jpegs, size, results))
    publisher.start()
    try:
        load: LoadResult = results.get(timeout=args.duration_s + DRAIN_TIMEOUT_S + 120)
    finally:
        publisher.join(30)
    ingest_cpu_s = time.process_time() - cpu0
    broker_cpu_s, s3_cpu_s = _proc_cpu_s(broker.process.pid) - broker0, _proc_cpu_s(s3.process.pid) - s3_0
    for ingest in ingests:
        ingest.stop()
    n_sent = sum(map(len, load.sent_ids.values()))
    stored = sum(i.stats().stored for i in ingests)
    check = check_store(store.inner if isinstance(store, LatencyStore) else store, load.sent_ids)
    if stored != n_sent:
        check += f"; {stored} writes for {n_sent} frames"
    if load.acked != n_sent:
        check += f"; {load.acked} of {n_sent} acked ok, {load.refused} refused"
    if load.resent:
        check += f" ({load.resent} re-sent)"
    lat = sorted(load.latencies_ms) or [float("nan")]
    per_frame_ms = 1000 / max(1, n_sent)
    return IngestBenchRow(
        stream=name, frames=n_sent, wall_s=load.elapsed_s, frames_per_s=load.acked / load.elapsed_s,
        mb_per_s=load.jpeg_bytes / load.elapsed_s / 1e6, ack_p50_ms=lat[len(lat) // 2],
        ack_p99_ms=lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        ingest_cpu_ms_per_frame=ingest_cpu_s * per_frame_ms, broker_cpu_ms_per_frame=broker_cpu_s * per_frame_ms,
        s3_cpu_ms_per_frame=s3_cpu_s * per_frame_ms, publisher_cpu_ms_per_frame=load.cpu_s * per_frame_ms,
        check=check)


DEFAULT_ENDPOINTS = 8


def run_bench_ingest(args) -> int:
    args.endpoints = DEFAULT_ENDPOINTS if args.endpoints is None else args.endpoints
    counts = {"--endpoints": args.endpoints, "--window": args.window, "--workers": args.workers,
              "--pool-size": args.pool_size}
    if bad := [f"{flag} {value}" for flag, value in counts.items() if value < 1] + \
            ([f"--frames {args.frames}"] if args.frames < 0 else []) + \
            ([f"--store-latency-ms {args.store_latency_ms:g}"] if not args.store_latency_ms >= 0 else []) + \
            ([f"--duration-s {args.duration_s:g}"] if not args.duration_s > 0 else []):
        print(f"edgeloop bench ingest: {', '.join(bad)}: counts must be at least 1, times and frames not negative",
              file=sys.stderr)  # before a broker or a store is started
        return 2
    from rich.console import Console
    from rich.table import Table

    from edge.store.s3 import S3Store
    from pipelines.broker import Broker
    from pipelines.bench_store_alone import write_frames
    from pipelines.s3_server import SeaweedS3

    streams = {"synthetic 320x240": None}
    if args.video and Path(args.video).exists():
        streams[f"{Path(args.video).name}"] = str(Path(args.video).resolve())
    elif args.video:
        log.warning("no real video at %s; benchmarking the synthetic stream only", args.video)
    rows, alone = [], []
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-") as workdir, \
            Broker(workdir=Path(workdir) / "broker") as broker, SeaweedS3(workdir=Path(workdir) / "s3") as s3:
        log.info("broker %s (%s), S3 %s", broker.url, broker.kind, s3.endpoint)
        store = S3Store(s3.endpoint, "bench", s3.access_key, s3.secret_key)
        if args.store_latency_ms > 0:
            store = LatencyStore(store, args.store_latency_ms / 1000)
        for name, video in streams.items():
            jpegs, width, height = make_jpegs(video)
            rows.append(bench_stream(name, jpegs, (width, height), args, broker, s3, store))
            if not alone:  # the first stream's frames again, straight into the store: what it alone costs
                alone.append(write_frames(store.inner if isinstance(store, LatencyStore) else store,
                                          s3.process.pid, jpegs, (width, height), rows[-1].frames, args.pool_size))
    title = (f"ingest: {args.endpoints} endpoints → {broker.kind} → {args.workers} ingest x {args.pool_size} "
             f"store threads → SeaweedFS (+{args.store_latency_ms:g} ms per store call), window {args.window}")
    table = Table(title=title)
    for col in ("stream", "frames", "wall s", "frames/s", "MB/s", "ack p50 ms", "ack p99 ms", "store check"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r.stream, str(r.frames), f"{r.wall_s:.1f}", f"{r.frames_per_s:,.0f}", f"{r.mb_per_s:.1f}",
                      f"{r.ack_p50_ms:.0f}", f"{r.ack_p99_ms:.0f}", r.check)
    Console(width=160).print(table)
    # CPU per frame is what a shared or small machine runs out of; frames/s on 2 cores is capped by the sum
    cpu = Table(title=f"CPU ms per frame by process ({os.cpu_count()} cores: the sum caps frames/s at "
                      f"cores x 1000 / sum)")
    for col in ("stream", "ingest", "broker", "SeaweedFS", "publisher", "sum", "frames/s cap"):
        cpu.add_column(col, justify="right")
    for r in rows:
        cap = (os.cpu_count() or 1) * 1000 / r.all_cpu_ms_per_frame if r.all_cpu_ms_per_frame else float("nan")
        cpu.add_row(r.stream, f"{r.ingest_cpu_ms_per_frame:.2f}", f"{r.broker_cpu_ms_per_frame:.2f}",
                    f"{r.s3_cpu_ms_per_frame:.2f}", f"{r.publisher_cpu_ms_per_frame:.2f}",
                    f"{r.all_cpu_ms_per_frame:.2f}", f"{cap:,.0f}")
    Console(width=160).print(cpu)
    Console(width=160).print(_store_alone_table(rows[0].stream, alone[0], args.pool_size))
    return 0 if all(r.check == "ok" for r in rows) else 1


def _store_alone_table(stream: str, row, threads: int):
    from rich.table import Table

    table = Table(title=f"the store alone: ingest's writes for the {stream} frames from {threads} threads, "
                        f"no broker (SeaweedFS +0 ms)")
    for col in ("frames", "wall s", "frames/s", "writer CPU ms/frame", "SeaweedFS CPU ms/frame",
                f"frames/s cap, SeaweedFS alone on {os.cpu_count()} cores"):
        table.add_column(col, justify="right")
    table.add_row(str(row.frames), f"{row.wall_s:.1f}", f"{row.frames_per_s:,.0f}", f"{row.writer_cpu_ms_per_frame:.2f}",
                  f"{row.store_cpu_ms_per_frame:.2f}", f"{row.store_cap_frames_per_s:,.0f}")
    return table
