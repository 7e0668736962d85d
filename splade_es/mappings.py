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
