"""Specs for the engine tests: the default ones (and, marked `oldgen`, the previous generation),
on ports shifted by SPLADE_ES_TEST_PORT_SHIFT (0 by default) so a developer can run these tests
beside nodes already on the defaults."""

from __future__ import annotations

import pytest
from splade_es_workshop.engines import DEFAULT_SPECS, EngineSpec

from tests.conftest import engine_spec, generation_params


def shifted_spec(name: str, generation: str = "new") -> EngineSpec:
    return engine_spec(name, generation)


@pytest.fixture(params=generation_params(*sorted(DEFAULT_SPECS)))
def spec(request: pytest.FixtureRequest) -> EngineSpec:
    generation, name = request.param
    return shifted_spec(name, generation)
