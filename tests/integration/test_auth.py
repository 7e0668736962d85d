"""Basic auth against a real secured Elasticsearch node (``engines.SECURED_SPEC``).

Why: users point the CLI at clusters with security on; the right credentials must connect,
and wrong ones must give a one-line "authentication failed" error that never echoes the
password, never a traceback. The node is stopped after this module to free memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from click.testing import CliRunner
from splade_es_workshop import engines
from splade_es_workshop.engines import SECURED_SPEC, SECURED_USER

from splade_es.cli import main
from splade_es.client import ConnectionSettings, EngineError, open_cluster
from tests.conftest import shifted

pytestmark = pytest.mark.engine
SECURED = shifted(SECURED_SPEC)

WRONG = "wrong-pw-7f3a"


@pytest.fixture(scope="module")
def secured_url() -> Iterator[str]:
    url = engines.start(SECURED, wait_s=300)
    try:
        yield url
    finally:
        engines.stop(SECURED)


def test_spec_hides_password() -> None:
    assert SECURED.password is not None
    assert SECURED.password not in repr(SECURED)


def test_launcher_status_authenticates(secured_url: str) -> None:
    st = engines.status(SECURED)
    assert st["running"] is True
    assert (st["engine"], st["version"]) == ("elasticsearch", SECURED.version)
    assert st["user"] == SECURED_USER
    # the same port without credentials answers 401, and the launcher says so
    anon = engines.status(replace(SECURED, password=None))
    assert anon["running"] is True
    assert anon.get("error") == "authentication failed"


def test_right_credentials_connect(secured_url: str) -> None:
    client, info = open_cluster(
        ConnectionSettings(url=secured_url, username=SECURED_USER, password=SECURED.password)
    )
    assert info.engine == "elasticsearch"
    assert info.version == SECURED.version
    health = client.cluster.health()
    assert health["status"] in ("yellow", "green")


def test_wrong_password_fails_clearly(secured_url: str) -> None:
    with pytest.raises(EngineError, match="authentication failed") as excinfo:
        open_cluster(ConnectionSettings(url=secured_url, username=SECURED_USER, password=WRONG))
    assert WRONG not in str(excinfo.value)


def test_no_credentials_fail_clearly(secured_url: str) -> None:
    with pytest.raises(EngineError, match="authentication failed"):
        open_cluster(ConnectionSettings(url=secured_url))


def test_cli_wrong_password_is_one_line(secured_url: str) -> None:
    args = ["search", "x", "--index", "i", "--url", secured_url]
    result = CliRunner().invoke(main, [*args, "--user", SECURED_USER, "--password", WRONG])
    out = result.output
    assert result.exit_code == 1, out
    assert "authentication failed" in out
    assert "Traceback" not in out
    assert WRONG not in out
    assert len(out.strip().splitlines()) == 1, out
