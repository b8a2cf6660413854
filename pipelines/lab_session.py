"""Everything a lab run holds open: broker, store, ingest, keys, bootstrap models, endpoints, the edge loop."""

from __future__ import annotations

import logging
import shutil
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from edge.bootstrap import bootstrap_models
from edge.export import export_onnx, quantize_student
from edge.ingest import Ingest
from edge.ingest_config import IngestConfig
from edge.learning_config import LearningConfig, load_learning_config
from edge.mqtt_connection import MqttConnection
from edge.registry import ModelRegistry
from edge.replay import ReplayBuffer
from edge.scheduler.registry import make_policy
from edge.signing import generate_keypair, load_private_key
from edge.store import StoreConfig, open_store
from pipelines.broker import Broker
from pipelines.edge_loop import STUDENT_NAME, EdgeLoop, EndpointTrack, LearningState, RoundSettings
from pipelines.lab_endpoints import LabEndpoints
from pipelines.lab_metrics import LabMetrics
from pipelines.scenarios import open_scenario

log = logging.getLogger(__name__)

VAL_FRAMES = 40


class LabSession:
    """Brings the testbed up in ``__enter__`` and down (every process, in order) in ``__exit__``."""

    def __init__(self, args, out: Path, console: Console):
        self.args, self.out, self.console = args, out, console
        self.scenario = open_scenario(args.scenario, args.seed)
        kbytes_per_s = args.budget_kbps * 1000 / 8
        self.settings = RoundSettings(budget_bytes=int(kbytes_per_s * args.round_s), round_s=args.round_s,
                                      frames_per_round=args.frames, labels=tuple(args.labels.split(",")))
        self._stack = ExitStack()

    def __enter__(self) -> "LabSession":
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _start(self) -> None:
        args, out, say = self.args, self.out, self.console.print
        self.learning = lab_learning_config(args, out)
        policy = make_policy(args.policy)
        broker = self._stack.enter_context(Broker(workdir=_dir(out / "broker")))
        store = open_store(self._store_config())
        say(f"broker [bold]{broker.kind}[/] on {broker.url}; store {store.describe()}")
        ingest = Ingest(IngestConfig(broker_port=broker.port), store).start()
        self._stack.callback(ingest.stop)
        private_path, public_path = generate_keypair(_dir(out / "keys"))
        registry = ModelRegistry(store, load_private_key(private_path))

        with self.console.status("bootstrap: training the first teacher and student (cached after the first run)"):
            train = self._bootstrap_items("train")
            val = self._bootstrap_items("val")
            boot = bootstrap_models(self.learning, train, val, self.scenario.class_names)
            fp32 = export_onnx(boot.student, out / "work" / "bootstrap" / "student.onnx", self.learning.imgsz)
            int8 = quantize_student(fp32, out / "work" / "bootstrap" / "student-int8.onnx",
                                    [i.image for i in train[: self.learning.calibration_frames]], self.learning.imgsz)
        first_manifest = registry.publish(STUDENT_NAME, int8, format="onnx-int8",
                                          input_size=(self.learning.imgsz, self.learning.imgsz),
                                          class_names=self.scenario.class_names, metrics={"round": -1.0})
        say(f"bootstrap {'(cached) ' if boot.cached else ''}student {first_manifest.version}: "
            f"{first_manifest.size_bytes / 1e3:.0f} kB INT8")

        endpoints = LabEndpoints(_dir(out / "endpoints"))
        self._stack.callback(endpoints.stop)
        tracks = []
        for i in range(args.endpoints):
            endpoint_id = f"cam-{i + 1}"
            models_dir = _dir(out / "endpoints" / endpoint_id / "models")
            model_path = models_dir / f"{first_manifest.version}.onnx"
            shutil.copyfile(int8, model_path)
            endpoints.add(endpoint_id, {
                "broker": {"port": broker.port},
                "source": {**self.scenario.endpoint_source(i),
                           "fps": max(1.0, args.frames / max(1.0, args.round_s * 0.8))},
                "sampler": {"name": "uniform", "sample_rate": 1.0, "seed": args.seed + i},
                "uplink": {"spool_dir": str(out / "endpoints" / endpoint_id / "spool"), "ack_timeout_s": 5.0},
                "model": {"path": str(model_path), "version": first_manifest.version, "models_dir": str(models_dir),
                          "public_key": str(public_path)},
                "telemetry_interval_s": 1.0,
                "metrics_port": (args.metrics_port + 1 + i) if args.metrics_port else 0,
            })
            val_sets = {d: self.scenario.val_set(d, i, VAL_FRAMES) for d in self.scenario.domains}
            tracks.append(EndpointTrack(endpoint_id, val_sets, first_manifest.version))
        endpoints.start()
        self.endpoints = endpoints

        mqtt = MqttConnection("127.0.0.1", broker.port, client_id="edgeloop-lab-edge")
        mqtt.start()
        self._stack.callback(mqtt.stop)
        state = LearningState(teacher_pt=boot.teacher, student_pt=boot.student, static_onnx=int8,
                              replay=ReplayBuffer(self.learning.replay_capacity_per_domain, seed=args.seed))
        state.replay.add(train, self.scenario.domains[0])
        self.loop = EdgeLoop(store, mqtt, registry, policy, self.learning, state, tracks,
                             self.scenario.class_names, _dir(out / "work"))
        self.metrics = LabMetrics(args.metrics_port)

    def _bootstrap_items(self, split: str):
        from edge.bootstrap import scenario_items
        from endpoint.scenario import SyntheticScenario
        from pipelines.scenarios import folder_items

        first = self.scenario.domains[0]
        if self.scenario.folders:
            return folder_items(self.scenario.folders[first], split)
        synthetic = SyntheticScenario(seed=self.scenario.seed + 1000)
        if split == "train":
            return scenario_items(synthetic, first, 0, self.learning.bootstrap_train_frames, "train-")
        return scenario_items(synthetic, first, 100_000, self.learning.bootstrap_val_frames, "val-")

    def _store_config(self) -> StoreConfig:
        spec = self.args.store
        if spec == "local":
            return StoreConfig(kind="local", path=str(self.out / "store"))
        return StoreConfig(kind="s3", endpoint=spec, bucket="edgeloop-lab", access_key=self.args.s3_access_key,
                           secret_key=self.args.s3_secret_key)


def lab_learning_config(args, out: Path) -> LearningConfig:
    """The learning settings: ``--learning FILE`` (or the defaults), with the lab's paths, seed and ``--imgsz``."""
    base = load_learning_config(args.learning) if args.learning else LearningConfig()
    update = {"cache_dir": Path(args.cache), "work_dir": out / "work", "seed": args.seed}
    if args.imgsz:
        update["imgsz"] = args.imgsz
    return LearningConfig.model_validate({**base.model_dump(), **update})


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
