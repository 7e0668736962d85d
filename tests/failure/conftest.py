"""Fixtures shared by the failure suite's modules."""

from .beam_helpers import beam_index, beam_node

__all__ = ["beam_index", "beam_node"]
