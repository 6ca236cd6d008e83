"""``hugectr.inference`` as HugeCTR <= 23.08 had it: ``InferenceParams``, ``InferenceModel``,
``CreateInferenceSession`` (HugeCTR's HEAD dropped the module for its separate HPS plugins)."""

from .model import CreateInferenceSession, InferenceModel, InferenceSession
from .params import InferenceParams

__all__ = ["CreateInferenceSession", "InferenceModel", "InferenceParams", "InferenceSession"]
