"""Fuzz a real endpoint process (``edgeloop endpoint``) on its plan, model, model_data and ack topics.

Valid traffic between the mutants: a plan with a new round every ``MUTANTS_PER_VALID`` messages and, halfway,
one signed model push. Kept means: every valid plan applied (its ``round N: budget`` log line), the push
acked ok and running, and the endpoint still detecting at the end. Refusals are counted from its log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipelines.fuzz_common import MUTANTS_PER_VALID, FuzzRow, Sender, count_log_lines, end_process, rss_mib, wait_until
from pipelines.fuzz_mutate import Mutator, dumps

log = logging.getLogger(__name__)

ENDPOINT = "cam-1"
PUSH_VERSION = "v0002"  # mutant pushes use "mut-00NN": no single flip turns one into the other
REFUSALS = {"malformed plan": "ignoring a malformed plan",
            "plan for another endpoint": "ignoring a plan that is not for",
            "plan that cannot be applied": "ignoring a plan that cannot be applied",
            "model push refused (ack ok=false)": "refused model push", "malformed ack": "ignoring a malformed ack"}
START_TIMEOUT_S = 60.0


def _manifest(model: bytes, version: str, serial: int, target: str = ENDPOINT):
    from endpoint.wire.manifest import Manifest

    return Manifest(name="student", version=version, parent_version="v0001", format="onnx-fp32", target=target,
                    serial=serial, sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model),
                    input_size=(128, 128), class_names=["person", "car", "bicycle"], created=time.time())


def _push(manifest, key, body: bytes, encoding: str = "full", parent: str = "") -> tuple[dict, bytes]:
    """The announcement (a dict, to mutate) and model_data payload of one push."""
    from edge.signing import sign
    from endpoint.wire import protocol
    from endpoint.wire.manifest import canonical_bytes

    header = protocol.make_model_data_header(body, endpoint_id=ENDPOINT, version=manifest.version,
                                             encoding=encoding, parent_version=parent)
    announcement = protocol.ModelAnnouncement(
        endpoint_id=ENDPOINT, version=manifest.version, parent_version=parent, encoding=encoding,
        url=protocol.MODEL_DATA_URL, size_bytes=manifest.size_bytes, sha256=manifest.sha256,
        signature=sign(manifest, key), manifest=canonical_bytes(manifest).decode("utf-8"))
    return announcement.model_dump(mode="json"), protocol.encode_model_data(header, body)


def _hostile_pushes(key, attacker_key, running: bytes) -> list[tuple[dict, bytes]]:
    """Pushes that must never install, even unmutated: bad signer, other target, bytes that are not a model."""
    from endpoint.wire.delta import OP_COPY, OP_INSERT, OP_SPARSE, pack_delta, sparse_patch

    junk = random.Random(0).randbytes(4096)
    # A delta of an insert, a sparse patch (mutants reach its decoder) and a copy, rebuilding a file that cannot load.
    span = running[8:4104]
    patched = bytes(b ^ 1 if i % 50 == 0 else b for i, b in enumerate(span))
    patch = sparse_patch(span, patched)
    not_onnx = b"NOT-ONNX" + patched + running[4104:]
    delta = pack_delta(hashlib.sha256(running).digest(), len(not_onnx),
                       [(OP_INSERT, 0, 8, 8), (OP_SPARSE, 8, len(span), len(patch)),
                        (OP_COPY, 4104, len(running) - 4104, 0)], b"NOT-ONNX" + patch)
    return [_push(_manifest(junk, "mut-0050", 50), attacker_key, junk),
            _push(_manifest(junk, "mut-0051", 51, target="cam-2"), key, junk),
            _push(_manifest(junk, "mut-0052", 52), key, junk),
            _push(_manifest(not_onnx, "mut-0053", 53), key, delta, "delta", "v0001")]


def _is_valid_plan(payload: bytes) -> bool:
    from endpoint.wire import protocol

    try:
        message = protocol.decode(payload)
    except Exception:  # whatever the decoder does with it, it is no valid message
        return False
    return isinstance(message, protocol.Plan) and message.endpoint_id == ENDPOINT


def _start(work: Path, host: str, port: int, model_path: Path, public_key: Path) -> tuple[subprocess.Popen, Path]:
    models_dir = work / "models"
    models_dir.mkdir(parents=True)
    shutil.copyfile(model_path, models_dir / "v0001.onnx")
    config = work / "endpoint.yaml"
    config.write_text(yaml.safe_dump({
        "endpoint_id": ENDPOINT, "broker": {"host": host, "port": port},
        "source": {"kind": "scenario", "fps": 5.0}, "sampler": {"name": "uniform", "sample_rate": 0.0},
        "uplink": {"spool_dir": str(work / "spool")},
        "model": {"path": str(models_dir / "v0001.onnx"), "version": "v0001", "models_dir": str(models_dir),
                  "public_key": str(public_key)},
        "telemetry_interval_s": 0.5}))
    log_path = work / "endpoint.log"
    with open(log_path, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "endpoint", "--config", str(config)],
                                   stdout=out, stderr=subprocess.STDOUT)
    return process, log_path


def fuzz_endpoint(host: str, port: int, work: Path, messages: int, seed: int, rate_per_s: float,
                  model_path: Path) -> FuzzRow:
    from edge.signing import generate_keypair, load_private_key
    from endpoint.wire import protocol

    row = FuzzRow("endpoint (plan, model, model_data, ack)")
    mutator = Mutator(seed + 1)
    work.mkdir(parents=True, exist_ok=True)
    private_path, public_path = generate_keypair(work / "keys")
    key, attacker_key = load_private_key(private_path), load_private_key(generate_keypair(work / "attacker")[0])
    running_bytes = Path(model_path).read_bytes()
    hostile = _hostile_pushes(key, attacker_key, running_bytes)
    plan = protocol.Plan(endpoint_id=ENDPOINT, round=0, upload_budget_bytes=0, upload_rate_bytes_per_s=1000.0,
                         sample_rate=0.0).model_dump(mode="json")
    ack = protocol.Ack(endpoint_id=ENDPOINT, frame_ids=["f-000001"]).model_dump(mode="json")
    telemetry: list[protocol.Telemetry] = []
    acks: list[protocol.Ack] = []
    topic = lambda feature: protocol.topic(ENDPOINT, feature)  # noqa: E731

    def on_json(target: list):
        def handle(t: str, payload: bytes) -> None:
            try:
                target.append(protocol.decode(payload))
            except Exception:  # our own mutated acks come back on the ack topic
                pass
        return handle

    started = time.time()
    process, log_path = _start(work, host, port, model_path, public_path)
    sender = Sender(host, port, "fuzz-endpoint-sender", rate_per_s)
    try:
        sender.listen(topic(protocol.FEATURE_TELEMETRY), on_json(telemetry))
        sender.listen(topic(protocol.FEATURE_ACK), on_json(acks))
        if not wait_until(lambda: any(t.time > started for t in telemetry) or process.poll() is not None,
                          START_TIMEOUT_S) or process.poll() is not None:
            raise RuntimeError(f"the endpoint did not start; see {log_path}")
        row.rss_start_mib = rss_mib(process.pid, "VmHWM")
        rounds: list[int] = []
        frames_at_push = 0
        for i in range(messages):
            if i % MUTANTS_PER_VALID == 0:
                rounds.append(len(rounds) + 1)
                sender.send(topic(protocol.FEATURE_PLAN), protocol.encode(protocol.Plan(
                    endpoint_id=ENDPOINT, round=rounds[-1], upload_budget_bytes=0,
                    upload_rate_bytes_per_s=1000.0 + rounds[-1], sample_rate=0.0)))
            if i == messages // 2:
                frames_at_push = telemetry[-1].frames_seen
                announcement, data = _push(_manifest(running_bytes, PUSH_VERSION, 2), key, running_bytes)
                sender.send(topic(protocol.FEATURE_MODEL), json.dumps(announcement).encode())
                sender.send(topic(protocol.FEATURE_MODEL_DATA), data)
            feature, payload = _mutant(mutator, plan, ack, hostile, rounds[-1])
            sender.send(topic(feature), payload)
            row.mutated_sent += 1
        sender.flush()
        row.valid_sent = len(rounds) + 1
        last_round = rounds[-1]
        settled = wait_until(lambda: process.poll() is not None or any(
            t.round == last_round and t.model_version == PUSH_VERSION and t.frames_seen > frames_at_push + 5
            for t in telemetry[-3:]), 60.0)
    finally:
        sender.close()
        alive = end_process(row, process, "the endpoint process", log_path)
    text = log_path.read_text(errors="replace")
    applied = {int(line.split("round ")[1].split(":")[0]) for line in text.splitlines() if ": budget " in line}
    push_ok = any(a.ok and a.model_version == PUSH_VERSION and not a.frame_ids for a in acks)
    row.valid_kept = len(applied & set(rounds)) + int(push_ok and settled and alive)
    for reason, n in count_log_lines(log_path, REFUSALS).items():
        row.refuse(reason, n)
    escapes = count_log_lines(log_path, {"handler": "handler for edgeloop/"})["handler"]
    tracebacks = text.count("Traceback (most recent call last)")
    if escapes or tracebacks:
        row.crash(f"{escapes} handler exceptions, {tracebacks} tracebacks in {log_path}", max(escapes, tracebacks))
    if not settled:
        row.crash_notes.append("the endpoint did not report the last plan, the pushed model and new frames")
    return row


def _mutant(mutator: Mutator, plan: dict, ack: dict, hostile: list[tuple[dict, bytes]],
            current_round: int) -> tuple[str, bytes]:
    from endpoint.wire import protocol

    pick = mutator.rng.random()
    if pick < 0.3:
        payload = mutator.json(plan)
        if _is_valid_plan(payload):
            # Still a plan for this endpoint (an odd rate, sampler or budget): it is applied, so it must not
            # crash; it keeps the current round, so a huge round cannot make the valid plans that follow stale.
            payload = dumps({**json.loads(payload), "round": current_round})
        return protocol.FEATURE_PLAN, payload
    announcement, data = hostile[mutator.rng.randrange(len(hostile))]
    if pick < 0.4:  # unmutated: each must be refused on its own merits
        return mutator.rng.choice(((protocol.FEATURE_MODEL, json.dumps(announcement).encode()),
                                   (protocol.FEATURE_MODEL_DATA, data)))
    if pick < 0.6:
        return protocol.FEATURE_MODEL, mutator.json(announcement)
    if pick < 0.8:
        return protocol.FEATURE_MODEL_DATA, mutator.binary(data, "payload_bytes", "payload_sha256")
    return protocol.FEATURE_ACK, mutator.json(ack)
