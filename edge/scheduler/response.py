"""The response model's public face: the curves (``response_curve``) and their fit (``response_fit``).

Deployed mAP as a saturating function of uploaded data and of the pushed model; the model and its fit are
derived in docs/scheduler.md.
"""

from __future__ import annotations

from edge.scheduler.response_curve import (ResponseParams, curve_carry, data_response, default_prior, option_key,
                                           predict_map, push_carry)
from edge.scheduler.response_fit import CANDIDATE_MATCH, CARRY_PSEUDO_COUNT, ResponseFit, candidate_student, fit_response

__all__ = ["CANDIDATE_MATCH", "CARRY_PSEUDO_COUNT", "ResponseFit", "ResponseParams", "candidate_student",
           "curve_carry", "data_response", "default_prior", "fit_response", "option_key", "predict_map", "push_carry"]
