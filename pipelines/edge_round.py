"""``edgeloop round``: one learning round against a running broker, ingest and endpoints.

``--init`` prepares the edge once: signing key, bootstrapped teacher and student, the first
INT8 student in the registry, and the files each endpoint starts with (``state_dir/deploy``).
Each later call runs one round (plan → uploads → learn → push → evaluate) and keeps what the
next round needs in ``state_dir``: models, replay buffer, scheduler history, deployed versions.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from rich.console import Console

from edge.learning_config import LearningConfig
from pipelines.round_config import RoundConfig, load_round_config

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


def run_round_command(args) -> int:
    console = Console(width=170)
    try:
        config = load_round_config(args.config)
    except (OSError, ValueError) as exc:
        console.print(f"[red]edgeloop round: bad config {args.config}:[/] {exc}")
        return 2
    if args.init:
        return init_edge(config, console)
    state_path = config.state_dir / STATE_FILE
    if not state_path.exists():
        console.print(f"[red]edgeloop round:[/] {config.state_dir} holds no edge state; "
                      f"run `edgeloop round --config {args.config} --init` first")
        return 2
    return run_one_round(config, json.loads(state_path.read_text()), args.domain or config.domain, console)


def _learning(config: RoundConfig) -> LearningConfig:
    return config.learning.model_copy(update={"cache_dir": config.state_dir / "cache",
                                              "work_dir": config.state_dir / "work"})


def init_edge(config: RoundConfig, console: Console) -> int:
    """Key pair, bootstrap models, the first registry version, and the files endpoints start with."""
    from edge.bootstrap import bootstrap_models
    from edge.export import export_onnx, quantize_student
    from edge.registry import ModelRegistry
    from edge.signing import generate_keypair, load_private_key
    from edge.store import open_store
    from pipelines.scenarios import folder_items, folder_scenario
    from pipelines.edge_loop import STUDENT_NAME

    state_dir = config.state_dir
    if (state_dir / STATE_FILE).exists():
        console.print(f"[red]edgeloop round --init:[/] {state_dir} is already initialized")
        return 2
    if config.bootstrap_data is None:
        console.print("[red]edgeloop round --init:[/] set bootstrap_data: a YOLO folder of the first domain")
        return 2
    scenario = folder_scenario([config.bootstrap_data])
    learning = _learning(config)
    train = folder_items(config.bootstrap_data, "train")
    val = folder_items(config.bootstrap_data, "val")
    keys = state_dir / "keys"
    private_path, public_path = generate_keypair(keys)
    with console.status("bootstrap: training the first teacher and student"):
        boot = bootstrap_models(learning, train, val, scenario.class_names)
        fp32 = export_onnx(boot.student, state_dir / "work" / "bootstrap" / "student.onnx", learning.imgsz)
        int8 = quantize_student(fp32, state_dir / "static.onnx",
                                [i.image for i in train[: learning.calibration_frames]], learning.imgsz)
    shutil.copyfile(boot.teacher, state_dir / "teacher.pt")
    shutil.copyfile(boot.student, state_dir / "student.pt")
    registry = ModelRegistry(open_store(config.store), load_private_key(private_path))
    manifest = registry.publish(STUDENT_NAME, int8, format="onnx-int8", input_size=(learning.imgsz, learning.imgsz),
                                class_names=scenario.class_names, metrics={"round": -1.0})
    deploy = state_dir / "deploy"
    deploy.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(int8, deploy / f"{manifest.version}.onnx")
    shutil.copyfile(public_path, deploy / public_path.name)
    _save_state(state_dir, {"next_round": 0, "class_names": scenario.class_names, "first_domain": scenario.domains[0],
                            "deployed": {ep.id: manifest.version for ep in config.endpoints}})
    console.print(f"edge state in {state_dir}; student {manifest.version} ({manifest.size_bytes / 1e3:.0f} kB INT8).\n"
                  f"Start each endpoint with model.path = {deploy / (manifest.version + '.onnx')}, "
                  f"model.version = {manifest.version}, model.public_key = {deploy / public_path.name}")
    return 0


def run_one_round(config: RoundConfig, state: dict, domain: str, console: Console) -> int:
    from edge.mqtt_connection import MqttConnection
    from edge.registry import ModelRegistry
    from edge.replay import ReplayBuffer
    from edge.scheduler.policy import RoundRecord
    from edge.scheduler.registry import make_policy
    from edge.signing import PRIVATE_KEY_FILE, load_private_key
    from edge.store import open_store
    from pipelines.edge_loop import STUDENT_NAME, EdgeLoop, EndpointTrack, LearningState, RoundSettings
    from pipelines.report import results_table
    from pipelines.results import append_result
    from pipelines.scenarios import folder_items

    state_dir, learning = config.state_dir, _learning(config)
    store = open_store(config.store)
    registry = ModelRegistry(store, load_private_key(state_dir / "keys" / PRIVATE_KEY_FILE))
    replay = ReplayBuffer.load(state_dir / "replay", learning.replay_capacity_per_domain, seed=learning.seed)
    if not len(replay) and config.bootstrap_data is not None:
        replay.add(folder_items(config.bootstrap_data, "train"), state["first_domain"])
    history_path = state_dir / "history.jsonl"
    history = [RoundRecord.from_dict(json.loads(line)) for line in history_path.read_text().splitlines()] \
        if history_path.exists() else []
    learning_state = LearningState(teacher_pt=state_dir / "teacher.pt", student_pt=state_dir / "student.pt",
                                   static_onnx=state_dir / "static.onnx", replay=replay, history=history)
    tracks = [EndpointTrack(ep.id, {domain: folder_items(ep.val, "val")},
                            state["deployed"].get(ep.id) or registry.versions(STUDENT_NAME)[0],
                            bytes_sent_total=state.get("bytes_sent", {}).get(ep.id, 0))
              for ep in config.endpoints]
    round_index = state["next_round"]
    settings = RoundSettings(
        budget_bytes=int(config.budget_kbps * 1000 / 8 * config.round_s), round_s=config.round_s,
        frames_per_round=config.frames, labels=tuple(config.labels),
        upload_timeout_s=max(180.0, 3 * config.round_s) if config.frames else config.round_s)
    mqtt = MqttConnection(config.broker_host, config.broker_port, username=config.username,
                          password=config.password)
    mqtt.start()
    try:
        loop = EdgeLoop(store, mqtt, registry, make_policy(config.policy), learning, learning_state, tracks,
                        state["class_names"], state_dir / "work")
        with console.status(f"round {round_index}: {domain}") as status:
            loop.on_stage = lambda text: (status.update(text), log.info("%s", text))
            results = loop.run_round(round_index, domain, settings)
    finally:
        mqtt.stop()
    for r in results:
        append_result(state_dir / "rounds.jsonl", r)
    for name, path in (("teacher.pt", learning_state.teacher_pt), ("student.pt", learning_state.student_pt)):
        if Path(path).resolve() != (state_dir / name).resolve():
            shutil.copyfile(path, state_dir / name)
    replay.save(state_dir / "replay.tmp")
    shutil.rmtree(state_dir / "replay", ignore_errors=True)
    (state_dir / "replay.tmp").rename(state_dir / "replay")
    history_path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in learning_state.history))
    state.update(next_round=round_index + 1, deployed={t.endpoint_id: t.deployed_version for t in tracks},
                 bytes_sent={t.endpoint_id: t.bytes_sent_total for t in tracks}, last_round_time=time.time())
    _save_state(state_dir, state)
    console.print(results_table(results, title=f"round {round_index} ({domain})"))
    console.print(f"results appended to {state_dir / 'rounds.jsonl'} (edgeloop report reads a folder holding it)")
    return 0


def _save_state(state_dir: Path, state: dict) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(state_dir / STATE_FILE)
