"""Specs for the engine tests: the default ones, on ports shifted by SPLADE_ES_TEST_PORT_SHIFT
(0 by default) so a developer can run these tests beside nodes already on the defaults."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from splade_es_workshop.engines import DEFAULT_SPECS, EngineSpec


def shifted_spec(name: str) -> EngineSpec:
    spec = DEFAULT_SPECS[name]
    return replace(spec, port=spec.port + int(os.environ.get("SPLADE_ES_TEST_PORT_SHIFT", "0")))


@pytest.fixture(params=sorted(DEFAULT_SPECS), ids=sorted(DEFAULT_SPECS))
def spec(request: pytest.FixtureRequest) -> EngineSpec:
    return shifted_spec(request.param)
