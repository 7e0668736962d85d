"""Index bodies per engine and version."""

from __future__ import annotations

import pytest

from splade_es.mappings import available, index_body


@pytest.mark.parametrize("name", available())
def test_every_shipped_mapping_has_bm25_text_and_sparse_field(name: str) -> None:
    engine, major = name.rsplit("-", 1)
    body = index_body(engine, f"{major}.0.0", field="vec")  # type: ignore[arg-type]
    props = body["mappings"]["properties"]
    assert props["vec"]["type"] in ("rank_features", "sparse_vector")
    assert props["content"]["type"] == "text"
    assert body["settings"]["index"]["number_of_replicas"] == 0


def test_types_per_engine() -> None:
    assert (
        index_body("opensearch", "2.19.1")["mappings"]["properties"]["splade"]["type"]
        == "rank_features"
    )
    es9 = index_body("elasticsearch", "9.1.0")
    assert es9["mappings"]["properties"]["splade"]["type"] == "sparse_vector"
    with pytest.raises(ValueError, match="supports"):
        index_body("opensearch", "3.0.0", field_type="sparse_vector")
    with pytest.raises(ValueError, match="no mapping"):
        index_body("elasticsearch", "6.8.0")
    with pytest.raises(ValueError, match=r"'\.'"):
        index_body("opensearch", "2.19.0", field="a.b")
