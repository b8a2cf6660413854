"""The learner's first start: signing key, bootstrapped teacher and student, the first signed INT8 student.

Every step is idempotent, so a learner killed during its first start begins again cleanly:
the key is made once, bootstrap weights are cached, and a first version already in the
registry is adopted rather than published twice.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from edge.learner.state import LearnerState, TrackState, load_state, save_state
from edge.learning_config import LearningConfig
from edge.registry import ModelRegistry
from edge.signing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_keypair, load_private_key, public_pem_of
from edge.store import ObjectStore
from edge.training_progress import report_training_to
from edge.yolo_dataset import LabelledImage
from endpoint.wire.durable_file import write_durably

log = logging.getLogger(__name__)

STUDENT_NAME = "student"
BOOTSTRAP_ROUND = -1.0  # the "round" metric of the first version


@dataclass(frozen=True)
class FirstModels:
    """What the learner starts from: its data, and the classes they name."""

    train: Sequence[LabelledImage]
    val: Sequence[LabelledImage]
    class_names: list[str]
    domain: str


def signing_key(state_dir: Path, public_key_dir: Path | None = None) -> tuple[Path, Path]:
    """The key pair under ``state_dir/keys``, made on first use and never replaced (endpoints trust it)."""
    keys = Path(state_dir) / "keys"
    private_path, public_path = keys / PRIVATE_KEY_FILE, keys / PUBLIC_KEY_FILE
    if private_path.exists() and not private_path.stat().st_size:
        # Left by a first start killed mid-write before keys were written atomically: it never signed anything.
        log.warning("replacing the empty signing key %s", private_path)
        private_path.unlink()
    if not private_path.exists():
        generate_keypair(keys)
    elif not public_path.exists():  # the same kill, between the two files: the public half follows from the key
        write_durably(public_path, public_pem_of(load_private_key(private_path)))
    if public_key_dir is not None:
        Path(public_key_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(public_path, Path(public_key_dir) / PUBLIC_KEY_FILE)
    return private_path, public_path


def open_registry(store: ObjectStore, state_dir: Path) -> ModelRegistry:
    return ModelRegistry(store, load_private_key(Path(state_dir) / "keys" / PRIVATE_KEY_FILE))


def initial_state(state_dir: Path, registry: ModelRegistry, learning: LearningConfig, first: FirstModels | None,
                  endpoint_ids: Sequence[str], fleet: str,
                  on_stage: Callable[[str], None] = lambda text: log.info("%s", text)) -> tuple[LearnerState, bool]:
    """The saved state, or a new one after bootstrapping; the flag says whether the bootstrap was cached."""
    from edge.bootstrap import bootstrap_models
    from edge.export import export_onnx, student_for_endpoint
    from edge.replay import ReplayBuffer

    state_dir = Path(state_dir)
    state = load_state(state_dir)
    if state is not None:
        return state, True
    if first is None:
        raise ValueError("the learner needs bootstrap data (a YOLO folder or a synthetic domain) on its first "
                         "start, for the first models and their INT8 calibration")
    on_stage("bootstrap: training the first teacher and student (cached after the first run)")
    with report_training_to(on_stage):
        boot = bootstrap_models(learning, first.train, first.val, first.class_names)
    static = state_dir / "static.onnx"
    latest = registry.latest(STUDENT_NAME)
    if latest is None or latest.metrics.get("round") != BOOTSTRAP_ROUND or not static.exists():
        fp32 = export_onnx(boot.student, state_dir / "work" / "bootstrap" / "student.onnx", learning.imgsz)
        calibration = [i.image for i in first.train[: learning.calibration_frames]]
        _, model_format = student_for_endpoint(fp32, static, calibration, learning.imgsz, learning.student_precision)
        latest = registry.publish(STUDENT_NAME, static, format=model_format,
                                  input_size=(learning.imgsz, learning.imgsz), class_names=first.class_names,
                                  metrics={"round": BOOTSTRAP_ROUND}, fleet=fleet)
    models = state_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    for role, path in (("teacher", boot.teacher), ("student", boot.student)):
        shutil.copyfile(path, models / f"{role}-boot.pt")
    replay = ReplayBuffer(learning.replay_capacity_per_domain, seed=learning.seed)
    replay.add(first.train, first.domain)
    replay_dir = state_dir / "replay-boot"
    shutil.rmtree(replay_dir, ignore_errors=True)
    replay.save(replay_dir)
    state = LearnerState(class_names=first.class_names, first_domain=first.domain,
                         teacher_pt=models / "teacher-boot.pt", student_pt=models / "student-boot.pt",
                         static_onnx=static, replay_dir=replay_dir,
                         tracks={ep: TrackState(endpoint_id=ep, target_version=latest.version) for ep in endpoint_ids})
    save_state(state_dir, state)
    log.info("bootstrap %s: student %s, %d kB INT8", "cached" if boot.cached else "trained", latest.version,
             latest.size_bytes // 1000)
    return state, boot.cached
