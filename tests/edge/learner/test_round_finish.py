"""How a round's push reads in rounds.jsonl."""

from __future__ import annotations

from edge.learner.round_finish import reported_push_kind
from edge.learner.state import PushDone


def test_a_push_waiting_for_an_endpoint_that_never_reported_is_pending_not_failed():
    assert reported_push_kind(PushDone(kind="pending", bytes=0, version="v0003")) == "pending"


def test_a_push_sent_and_never_acked_failed_and_an_acked_one_keeps_its_kind():
    assert reported_push_kind(PushDone(kind="delta", bytes=900, version="v0003")) == "failed"
    assert reported_push_kind(PushDone(kind="delta", bytes=900, version="v0003", acked=True)) == "delta"
    assert reported_push_kind(PushDone(kind="skip", bytes=0, version="")) == "skip"
