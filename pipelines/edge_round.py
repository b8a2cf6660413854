"""``edgeloop round``: one learning round now, against a running broker, ingest and endpoints.

It runs the learner of ``edgeloop edge`` for one round and exits: ``--init`` once prepares the
edge (signing key, bootstrapped teacher and student, the first INT8 student, and the files each
endpoint may start with in ``state_dir/deploy``); each later call plans, waits for the uploads,
learns, pushes and scores, keeping everything the next round needs in ``state_dir``.
"""

from __future__ import annotations

import logging
import shutil

from pydantic import ValidationError
from rich.console import Console

log = logging.getLogger(__name__)


def run_round_command(args) -> int:
    from edge.learner.collect import NoFramesError
    from edge.learner.config import LearnerConfig
    from edge.learner.service import Learner
    from edge.learner.state import STATE_FILE
    from edge.store import StoreError
    from endpoint.wire.config_base import load_config
    from pipelines.report import results_table

    console = Console(width=170)
    try:
        config = load_config(LearnerConfig, args.config, section="learner")
        config.check_folders()
        config.check_state()
    except (OSError, ValueError, ValidationError) as exc:
        console.print(f"[red]edgeloop round: bad config {args.config}:[/] {exc}")
        return 2
    initialized = (config.state_dir / STATE_FILE).exists()
    if args.init and initialized:
        console.print(f"[red]edgeloop round --init:[/] {config.state_dir} is already initialized")
        return 2
    if not args.init and not initialized:
        console.print(f"[red]edgeloop round:[/] {config.state_dir} holds no edge state; "
                      f"run `edgeloop round --config {args.config} --init` first")
        return 2
    try:
        learner = Learner(config)
    except StoreError as exc:
        console.print(f"[red]edgeloop round:[/] {exc}")
        return 2
    try:
        with console.status("starting the learner") as status:
            learner.on_stage = lambda text: (status.update(text), log.info("%s", text))
            learner.start()
            if args.init:
                return _deploy_files(learner, console)
            settings = learner.settings(collect_s=None if config.frames else config.round_s, wait_for_frames=False,
                                        upload_timeout_s=max(180.0, 3 * config.round_s))
            results = learner.run_round(args.domain or config.domain, settings)
    except NoFramesError as exc:
        console.print(f"[red]edgeloop round:[/] {exc}")
        return 1
    finally:
        learner.stop()
    console.print(results_table(results, title=f"round {results[0].round} ({results[0].domain})"))
    console.print(f"results appended to {config.state_dir / 'rounds.jsonl'} (edgeloop report reads it)")
    return 0


def _deploy_files(learner, console: Console) -> int:
    """The first student and the public key, for endpoints that should not wait for their first push."""
    deploy = learner.config.state_dir / "deploy"
    deploy.mkdir(parents=True, exist_ok=True)
    version = learner.first_version
    shutil.copyfile(learner.state.static_onnx, deploy / f"{version}.onnx")
    shutil.copyfile(learner.public_key, deploy / learner.public_key.name)
    console.print(f"edge state in {learner.config.state_dir}; first student {version}.\n"
                  f"Endpoints need model.public_key = {deploy / learner.public_key.name}; they may start with "
                  f"model.path = {deploy / (version + '.onnx')}, model.version = {version}, or with no model "
                  f"(the learner pushes it when they connect)")
    return 0
