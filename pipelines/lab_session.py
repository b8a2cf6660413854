"""Everything a lab run holds open: broker, store, ingest, endpoint processes, and the learner they serve."""

from __future__ import annotations

import logging
import shutil
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from edge.ingest import Ingest
from edge.ingest_config import IngestConfig
from edge.learner.config import LearnerConfig, LearnerEndpoint
from edge.learner.metrics import LearnerMetrics
from edge.learner.round_settings import RoundSettings
from edge.learner.service import Learner
from edge.learner.setup import FirstModels
from edge.learning_config import LearningConfig
from edge.store import StoreConfig, open_store
from endpoint.wire.broker_config import BrokerConfig
from endpoint.config import EndpointConfig, ModelConfig, SamplerConfig, UplinkConfig
from endpoint.wire.config_base import load_config
from endpoint.sources.streams import SourceConfig
from pipelines.broker import Broker
from pipelines.lab_endpoints import LabEndpoints
from pipelines.scenarios import open_scenario

log = logging.getLogger(__name__)

VAL_FRAMES = 40
UPLOAD_TIMEOUT_S = 180.0


class LabSession:
    """Brings the testbed up in ``__enter__`` and down (every process, in order) in ``__exit__``."""

    def __init__(self, args, out: Path, console: Console):
        self.args, self.out, self.console = args, out, console
        self.scenario = open_scenario(args.scenario, args.seed)
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
        first_folder = self.scenario.folders.get(self.scenario.domains[0]) if self.scenario.folders else None
        self.learning = lab_learning_config(args, out, first_folder, say)
        broker = self._stack.enter_context(Broker(kind=args.broker, workdir=_dir(out / "broker")))
        store = open_store(lab_store_config(args, out))
        say(f"broker [bold]{broker.kind}[/] on {broker.url}; store {store.describe()}")
        if args.store != "local" and (cleared := clear_store(store)):  # the local store's folder went with STALE
            say(f"cleared {cleared} objects of an earlier lab run from {store.describe()}: a lab run starts afresh")
        # amqtt has no shared subscriptions: there ingest subscribes plainly (one ingest, so nothing is split).
        shared_group = "ingest" if broker.kind == "mosquitto" else None
        ingest = Ingest(IngestConfig(broker=BrokerConfig(port=broker.port), shared_group=shared_group), store).start()
        self._stack.callback(ingest.stop)

        endpoint_ids = [f"cam-{i + 1}" for i in range(args.endpoints)]
        config = LearnerConfig(
            broker=BrokerConfig(port=broker.port, client_id="edgeloop-lab-learner"), state_dir=out,
            endpoints=[LearnerEndpoint(id=ep) for ep in endpoint_ids], domain=self.scenario.domains[0],
            policy=args.policy, budget_kbps=args.budget_kbps, round_s=args.round_s, frames=args.frames,
            labels=args.labels.split(","), metrics_port=0)
        first = FirstModels(self._bootstrap_items("train"), self._bootstrap_items("val"),
                            self.scenario.class_names, self.scenario.domains[0])
        val_sets = {ep: {d: self.scenario.val_set(d, i, VAL_FRAMES) for d in self.scenario.domains}
                    for i, ep in enumerate(endpoint_ids)}
        self.learner = Learner(config, learning=self.learning, store=store, first=first, val_sets=val_sets,
                               metrics=LearnerMetrics(args.metrics_port))
        with self.console.status("bootstrap: training the first teacher and student (cached after the first run)") \
                as status:
            self.learner.on_stage = lambda text: (status.update(f"bootstrap: {text}"), log.info("%s", text))
            self.learner.start()
        self._stack.callback(self.learner.stop)
        first_version = self.learner.first_version
        static = self.learner.state.static_onnx
        source = ("your weights" if self.learning.teacher.weights and self.learning.student.weights
                  else "cached" if self.learner.bootstrap_cached else "trained")
        say(f"bootstrap ({source}): student {first_version}, {static.stat().st_size / 1e3:.0f} kB INT8")

        endpoints = LabEndpoints(_dir(out / "endpoints"))
        self._stack.callback(endpoints.stop)
        for i, endpoint_id in enumerate(endpoint_ids):
            models_dir = _dir(out / "endpoints" / endpoint_id / "models")
            model_path = models_dir / f"{first_version}.onnx"
            shutil.copyfile(static, model_path)  # the factory image: every endpoint starts on the first student
            # typed here, so a wrong field fails in the lab, not in an endpoint's log
            endpoints.add(EndpointConfig(
                endpoint_id=endpoint_id, broker=BrokerConfig(port=broker.port),
                source=SourceConfig.model_validate({**self.scenario.endpoint_source(i),
                                                    "fps": max(1.0, args.frames / max(1.0, args.round_s * 0.8))}),
                sampler=SamplerConfig(name="uniform", sample_rate=1.0, seed=args.seed + i),
                uplink=UplinkConfig(spool_dir=str(out / "endpoints" / endpoint_id / "spool"), ack_timeout_s=5.0),
                model=ModelConfig(path=str(model_path), version=first_version, models_dir=str(models_dir),
                                  public_key=str(self.learner.public_key)),
                telemetry_interval_s=1.0,
                metrics_port=(args.metrics_port + 1 + i) if args.metrics_port else 0))
        endpoints.start()
        self.endpoints = endpoints

    def settings(self) -> RoundSettings:
        """Lab rounds end when every endpoint streamed its frames and saw them acked; no frames is an error."""
        return self.learner.settings(collect_s=None, wait_for_frames=False, upload_timeout_s=UPLOAD_TIMEOUT_S,
                                     min_frames=0, last_round=self.args.rounds - 1)

    def _bootstrap_items(self, split: str):
        from edge.yolo_dataset import scenario_items
        from edge.yolo_dataset import folder_items
        from endpoint.sources.scenario import SyntheticScenario

        first = self.scenario.domains[0]
        if self.scenario.folders:
            return folder_items(self.scenario.folders[first], split)
        synthetic = SyntheticScenario(seed=self.scenario.seed + 1000)
        if split == "train":
            return scenario_items(synthetic, first, 0, self.learning.bootstrap_train_frames, "train-")
        return scenario_items(synthetic, first, 100_000, self.learning.bootstrap_val_frames, "val-")


def lab_store_config(args, out: Path) -> StoreConfig:
    """``--store``: a folder in ``--out``, or the lab's bucket on an S3 server at HOST:PORT."""
    if args.store == "local":
        return StoreConfig(kind="local", path=str(out / "store"))
    return StoreConfig(kind="s3", endpoint=args.store, bucket="edgeloop-lab", access_key=args.s3_access_key,
                       secret_key=args.s3_secret_key)


def clear_store(store) -> int:
    """Delete every object of the lab's own bucket; how many there were. An earlier run's frames would otherwise
    join this run's rounds, as frames of the same round numbers."""
    keys = list(store.list(""))
    for key in keys:
        store.delete(key)
    return len(keys)


def lab_learning_config(args, out: Path, folder: Path | None = None, say=print) -> LearningConfig:
    """The learning settings: ``--learning FILE`` (or the defaults), with the lab's paths, seed, ``--imgsz``,
    ``--teacher`` / ``--student`` weights (which skip that model's bootstrap training), and, for a YOLO folder,
    data-aware image size, bootstrap epochs and batch wherever neither flag nor file set them."""
    base = load_config(LearningConfig, args.learning, section="learning") if args.learning else LearningConfig()
    update = {"cache_dir": Path(args.cache), "work_dir": out / "work", "seed": args.seed}
    if args.imgsz is not None:  # 0 too, so the config's check refuses it
        update["imgsz"] = args.imgsz
    raw = {**base.model_dump(), **update}
    for role in ("teacher", "student"):
        if getattr(args, role, None):
            raw[role] = {**raw[role], "weights": Path(getattr(args, role)).resolve()}
    if folder is not None:
        from edge.data_profile import data_aware_settings, profile_folder

        profile = profile_folder(folder)
        chosen = data_aware_settings(profile)
        explicit = base.model_fields_set | ({"imgsz"} if args.imgsz else set())
        if "epochs" not in base.bootstrap.model_fields_set:  # a YAML bootstrap of lr0 alone keeps the data's epochs
            explicit -= {"bootstrap"}
        if "imgsz" not in explicit:
            raw["imgsz"] = chosen.imgsz
        if "batch" not in explicit:
            raw["batch"] = chosen.batch
        if "nominal_batch" not in explicit:
            raw["nominal_batch"] = raw["batch"]  # a step per batch, also for a batch the user chose
        if "bootstrap" not in explicit:
            raw["bootstrap"] = {**raw["bootstrap"], "epochs": chosen.epochs}
        if "bootstrap" not in base.model_fields_set or "lr0" not in base.bootstrap.model_fields_set:
            raw["bootstrap"] = {**raw["bootstrap"], "lr0": chosen.lr0}
        say(f"data-aware settings for {folder.name}: {chosen.describe(profile)}")
        kept = sorted(explicit & {"imgsz", "batch", "nominal_batch", "bootstrap"})
        say(f"  kept from your flags or --learning: {', '.join(kept)}" if kept
            else "  (override any of them with --imgsz or --learning)")
    return LearningConfig.model_validate(raw)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
