"""Fuzz a real split server process (``edgeloop split-server``) with mutated co-inference requests.

Mutants are JPEG and feature (q8c-zlib) requests from cam-1, and cam-1's requests on cam-2's topic.
Every ``MUTANTS_PER_VALID`` messages a valid request goes out and must be answered ok before the fuzz goes
on. Refusals are the server's ok=false replies (by reason code) plus the requests it logs as unreadable.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

from pipelines.fuzz_common import MUTANTS_PER_VALID, FuzzRow, Sender, count_log_lines, end_process, rss_mib
from pipelines.fuzz_mutate import Mutator, jpeg_claiming

log = logging.getLogger(__name__)

ENDPOINT = "cam-1"
ANSWER_WAIT_S = 10.0
START_TIMEOUT_S = 60.0
UNREADABLE = "dropping a malformed split request"


class _Requests:
    """Builds requests from a few scenario frames: whole-frame JPEGs and the cut's compressed features."""

    def __init__(self, set_dir: Path):
        from edge.split.split_set import load_split_set
        from endpoint.model.letterbox import frame_to_jpeg
        from endpoint.model.split_halves import SplitHeadRunner
        from endpoint.sources.scenario import SyntheticScenario
        from endpoint.wire.feature_codec import CodecSpec, encode_tensors

        manifest = load_split_set(set_dir)
        pair = manifest.pairs[0]
        head = SplitHeadRunner(set_dir / pair.head, threads=1)
        spec = CodecSpec.parse("q8c-zlib")
        self.payloads: list[tuple[str, str, bytes, tuple[int, int]]] = []  # pair id, codec, payload, source (w, h)
        for i in range(3):
            image = SyntheticScenario().frame("day", 300_000 + i).image
            wh = (image.shape[1], image.shape[0])
            self.payloads.append(("jpeg", "jpeg", frame_to_jpeg(image, (manifest.imgsz, manifest.imgsz)), wh))
            self.payloads.append((pair.pair_id, spec.name, encode_tensors(head.run(image)[0], spec), wh))
        self.payloads.append(("jpeg", "jpeg", jpeg_claiming(60000, 60000), (640, 480)))  # a bomb, as a template
        self._ids = itertools.count()

    def encode(self, index: int, endpoint_id: str = ENDPOINT) -> tuple[str, bytes]:
        """A fresh request id and the request built from payload ``index``."""
        from endpoint.wire.split_protocol import SplitRequestHeader, encode_split_request

        pair_id, codec, payload, (w, h) = self.payloads[index]
        request_id = f"{endpoint_id}-{next(self._ids):08d}"
        header = SplitRequestHeader(endpoint_id=endpoint_id, request_id=request_id, pair_id=pair_id, codec=codec,
                                    source_width=w, source_height=h, sent_time=time.time(),
                                    payload_bytes=len(payload), link_bytes_per_s=250_000.0)
        return request_id, encode_split_request(header, payload)


def fuzz_split(host: str, port: int, work: Path, messages: int, seed: int, rate_per_s: float,
               set_dir: Path) -> FuzzRow:
    from endpoint.wire import protocol
    from endpoint.wire.split_protocol import FEATURE_SPLIT_REQUEST, FEATURE_SPLIT_RESULT, decode_result

    row = FuzzRow("split server (requests)")
    mutator = Mutator(seed + 3)
    requests = _Requests(set_dir)
    results: dict[str, object] = {}
    refusals: list = []  # every ok=false reply, also those to mutants whose ids collide
    arrived = threading.Condition()

    def on_result(topic: str, payload: bytes) -> None:
        try:
            result = decode_result(payload)
        except Exception:  # the server's replies are well-formed; anything else is not its
            return
        with arrived:
            results[result.request_id] = result
            if not result.ok:
                refusals.append(result)
            arrived.notify_all()

    def answer(request_id: str, timeout_s: float):
        with arrived:
            arrived.wait_for(lambda: request_id in results, timeout_s)
            return results.get(request_id)

    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "split-server.log"
    with open(log_path, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "split-server", "--set-dir", str(set_dir),
                                    "--host", host, "--port", str(port), "--threads", "1"],
                                   stdout=out, stderr=subprocess.STDOUT)
    sender = Sender(host, port, "fuzz-split-sender", rate_per_s)
    topic = protocol.topic(ENDPOINT, FEATURE_SPLIT_REQUEST)
    valid_ids: list[str] = []
    try:
        sender.listen(protocol.topic("+", FEATURE_SPLIT_RESULT), on_result)
        _warm_up(sender, topic, requests, answer, process, log_path)
        row.rss_start_mib = rss_mib(process.pid, "VmHWM")
        for i in range(messages):
            if i % MUTANTS_PER_VALID == 0:
                request_id, payload = requests.encode(len(valid_ids) % (len(requests.payloads) - 1))
                valid_ids.append(request_id)
                sender.send(topic, payload, qos=0)
                ok = answer(request_id, ANSWER_WAIT_S)
                row.valid_kept += int(ok is not None and ok.ok)
                if ok is not None and not ok.ok:
                    row.crash_notes.append(f"valid request {request_id} refused: {ok.reason}")
            template = requests.encode(mutator.rng.randrange(len(requests.payloads)))[1]
            if mutator.rng.random() < 0.1:  # cam-1's request, sent by whoever logs in as cam-2
                sender.send(protocol.topic("cam-2", FEATURE_SPLIT_REQUEST), template, qos=0)
            else:
                sender.send(topic, mutator.binary(template, "payload_bytes", None), qos=0)
            row.mutated_sent += 1
        # a last valid request after every mutant: when it is answered, the server has seen them all
        request_id, payload = requests.encode(0)
        valid_ids.append(request_id)
        sender.send(topic, payload, qos=0)
        row.valid_kept += int(getattr(answer(request_id, ANSWER_WAIT_S), "ok", False))
        row.valid_sent = len(valid_ids)
    finally:
        sender.close()
        end_process(row, process, "the split server process", log_path)
    valid = set(valid_ids)
    with arrived:
        for result in refusals:
            if result.request_id not in valid:
                row.refuse(result.reason.split(":")[0], 1)
    row.refuse("unreadable (logged, no reply)", count_log_lines(log_path, {"u": UNREADABLE})["u"])
    tracebacks = log_path.read_text(errors="replace").count("Traceback (most recent call last)")
    if tracebacks:
        row.crash(f"{tracebacks} tracebacks in {log_path}", tracebacks)
    return row


def _warm_up(sender: Sender, topic: str, requests: _Requests, answer, process, log_path: Path) -> None:
    """Until the server answers both kinds (its subscription is up and both models are loaded)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    for index in (0, 1):
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the split server did not start; see {log_path}")
            request_id, payload = requests.encode(index)
            sender.send(topic, payload, qos=0)
            if answer(request_id, 2.0) is not None:
                break
