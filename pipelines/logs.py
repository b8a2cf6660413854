"""The one place logging is configured: the ``edgeloop`` CLI (and the ``python -m pipelines.*`` scripts) call this."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
NOISY_LOGGERS = ("urllib3", "PIL", "matplotlib")


def configure_logging(verbose: bool = False, level: int | None = None) -> None:
    """Root handler and level for the whole process; libraries' chatter stays at warnings."""
    logging.basicConfig(level=level if level is not None else (logging.DEBUG if verbose else logging.INFO),
                        format=LOG_FORMAT, datefmt="%H:%M:%S")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = ["LOG_FORMAT", "configure_logging"]
