"""Index settings and mappings per engine and major version, read from the project's `mappings/`."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

Engine = Literal["opensearch", "elasticsearch"]
ENGINES: tuple[Engine, ...] = ("opensearch", "elasticsearch")
Analyzer = Literal["english", "standard"]
ANALYZERS: tuple[Analyzer, ...] = ("english", "standard")
DEFAULT_VERSIONS: dict[str, str] = {"opensearch": "3.6.0", "elasticsearch": "9.2.4"}
"""The engine generation the toolkit targets by default (Lucene 10): `mapping`'s default, and the
versions the workshop's local nodes run."""
TEXT_FIELD = "content"
"""The BM25 field every mapping has (title + text, copied)."""


def mappings_dir() -> Path:
    """The shipped mapping files: the package `splade_es.mapping_files` (the top-level `mappings/`
    folder, mapped by setup.cfg's `package_dir`; in a wheel, a copy of it)."""
    folder = Path(str(resources.files("splade_es.mapping_files")))
    if not folder.is_dir():
        raise FileNotFoundError(f"splade-es mappings not found at {folder} (broken install?)")
    return folder


def available() -> list[str]:
    """Names of the shipped mapping files, e.g. `opensearch-2`."""
    return sorted(p.stem for p in mappings_dir().glob("*.json"))


def major_version(version: str) -> int:
    """`"2.19.1"` -> 2."""
    head = version.split(".", 1)[0]
    if not head.isdigit():
        raise ValueError(f"unparseable engine version {version!r}")
    return int(head)


def index_body(
    engine: Engine,
    version: str,
    field: str = "splade",
    field_type: str | None = None,
    analyzer: Analyzer = "standard",
) -> dict[str, Any]:
    """Create-index body (settings + mappings) with the SPLADE field `field` of `field_type`.

    `field_type` defaults to the engine's preferred sparse type (`rank_features`, or
    `sparse_vector` on Elasticsearch 9). `analyzer` is the BM25 field's: `english` (stemming,
    needs the engine's analysis-common module) or `standard` (core: English stopwords, no stems).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if "." in field or not field:
        raise ValueError(f"SPLADE field name {field!r} must be non-empty and contain no '.'")
    major = major_version(version)
    path = mappings_dir() / f"{engine}-{major}.json"
    if not path.is_file():
        raise ValueError(f"no mapping for {engine} {version}; shipped: {', '.join(available())}")
    template = json.loads(path.read_text())
    types: dict[str, Any] = template["sparse_field_types"]
    chosen = field_type or next(iter(types))
    if chosen not in types:
        raise ValueError(f"{engine} {major}.x supports {sorted(types)} for SPLADE, not {chosen!r}")
    body = {"settings": template["settings"], "mappings": copy.deepcopy(template["mappings"])}
    if field in body["mappings"]["properties"]:
        raise ValueError(f"SPLADE field name {field!r} clashes with a text field")
    body["mappings"]["properties"][field] = types[chosen]
    if analyzer not in ANALYZERS:
        raise ValueError(f"analyzer must be one of {ANALYZERS}, got {analyzer!r}")
    if analyzer == "english":
        body["mappings"]["properties"][TEXT_FIELD]["analyzer"] = "english"
    return body


def sparse_field_type(mapping: dict[str, Any], field: str) -> str | None:
    """The type of `field` in an index's mapping (as returned by `GET index/_mapping`), if any."""
    props = mapping.get("properties", {})
    spec = props.get(field)
    return str(spec.get("type")) if isinstance(spec, dict) and "type" in spec else None


# BM25 scales. Lucene 8 removed the constant (k1 + 1) factor from BM25's numerator; OpenSearch 2.x
# and Elasticsearch kept it (their `LegacyBM25Similarity`), OpenSearch 3.0 dropped it. Rankings
# agree, but a `sum` hybrid adds BM25 to SPLADE, so its weights mean different things on the two.
LUCENE_BM25_SCALE = 1.0
"""Lucene's `BM25Similarity`: the scale hybrid weights assume on indices this project creates."""
DEFAULT_K1 = 1.2
"""Lucene's k1, for a field on the engine's default similarity (the shipped mappings use 0.9)."""


def bm25_scale(engine: Engine, version: str, k1: float = DEFAULT_K1) -> float:
    """How much larger the engine's BM25 scores are than Lucene's `BM25Similarity` for a field
    with this `k1`: (1 + k1) on the legacy similarity, 1 on OpenSearch 3+."""
    if engine == "opensearch" and major_version(version) >= 3:
        return LUCENE_BM25_SCALE
    return 1.0 + k1


def text_field_k1(settings: dict[str, Any], mapping: dict[str, Any], field: str) -> float:
    """The BM25 k1 a text field scores with: its named similarity's (from the index settings as
    `GET index/_settings` returns them), else Lucene's default."""
    spec = mapping.get("properties", {}).get(field)
    name = spec.get("similarity") if isinstance(spec, dict) else None
    index = settings.get("index", {})
    similarity = index.get("similarity", {}).get(name) if name else None
    if not isinstance(similarity, dict) or str(similarity.get("type", "BM25")) != "BM25":
        return DEFAULT_K1
    try:
        return float(similarity.get("k1", DEFAULT_K1))
    except (TypeError, ValueError):
        return DEFAULT_K1
