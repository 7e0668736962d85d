"""Fixtures shared by the failure suite's modules: `beam_node` and `beam_index` come from
`beam_helpers`, registered as a plugin in the top conftest (the runners suite uses them too)."""
