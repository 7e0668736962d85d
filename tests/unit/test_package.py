"""The package's public names resolve, and importing it stays cheap (no torch at import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import splade_es


def test_public_names_resolve() -> None:
    for name in splade_es.__all__:
        assert getattr(splade_es, name).__name__ == name
    with pytest.raises(AttributeError):
        _ = splade_es.nothing_here


def test_import_does_not_load_torch() -> None:
    code = "import sys, splade_es, splade_es.cli; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
