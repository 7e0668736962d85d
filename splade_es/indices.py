"""Index management: valid names, creation with every index-time decision recorded in `_meta`.

The query side must use the same model, quantization factor and field type as the documents were
indexed with; a mismatch silently ruins scores. So `ensure_index` writes those decisions into the
index mapping's `_meta.splade_es`, and `IndexProfile.read` gives them back to the searcher.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError, NotFoundError, RequestError, TransportError

from splade_es.client import EngineError, EngineInfo, describe_error
from splade_es.mappings import (
    DEFAULT_K1,
    LUCENE_BM25_SCALE,
    TEXT_FIELD,
    Analyzer,
    bm25_scale,
    index_body,
    sparse_field_type,
    text_field_k1,
)
from splade_es.records import FieldProfile
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR

META_KEY = "splade_es"
SPARSE_TYPES = ("rank_features", "sparse_vector")
_FORBIDDEN = re.compile(r'[\\/*?"<>|\s,#:]')


def check_index_name(name: str) -> str:
    """A concrete index name, or a one-line error: patterns, `_all` and invalid names are refused
    before any request, so a typo can never change the mapping of several indices."""
    problem = None
    if not name:
        problem = "is empty"
    elif name in ("_all", ".", ".."):
        problem = "names no single index"
    elif _FORBIDDEN.search(name):
        problem = 'contains a pattern or forbidden character (\\ / * ? " < > | , # : or space)'
    elif name[0] in "-_+":
        problem = "starts with - _ or +"
    elif name != name.lower():
        problem = "has upper-case letters"
    elif len(name.encode("utf-8")) > 255:
        problem = "is longer than 255 bytes"
    if problem:
        raise EngineError(f"index name {name!r} {problem}: give one concrete index name")
    return name


@dataclass(frozen=True)
class SpladeField(FieldProfile):
    """How one SPLADE field of an index was filled: `records.FieldProfile` plus the field type,
    as `_meta.splade_es.fields.<name>` records it."""

    quantization: float | None = DEFAULT_QUANTIZATION_FACTOR
    field_type: str = "rank_features"

    @classmethod
    def of(cls, made: FieldProfile, field_type: str = "rank_features") -> SpladeField:
        """The field filled as `made` says, with this type."""
        return cls(**{**made.made().to_json(), "field_type": field_type})


@dataclass(frozen=True)
class IndexProfile:
    """An index's SPLADE fields and BM25 text fields, as recorded when it was created or upgraded."""

    index: str
    uuid: str
    fields: dict[str, SpladeField]
    text_fields: tuple[str, ...] = (TEXT_FIELD,)
    analyzer: str = "standard"
    recorded: bool = True
    """False when the index has no `_meta.splade_es` (made by other tools): values are inferred."""
    bm25_scale: float | None = None
    """The BM25 scale hybrid `sum` weights on this index assume (`mappings.LUCENE_BM25_SCALE` for
    indices created now); None (not recorded: older indices) means the engine's own scale."""
    bm25_k1: float = DEFAULT_K1
    """k1 of the first text field's similarity (read from the index settings, not recorded)."""

    def bm25_correction(self, info: EngineInfo) -> float:
        """The factor that puts this engine's BM25 scores on the scale the weights assume, so a
        `--bm25-weight` weighs BM25 the same on OpenSearch 2.x (legacy BM25: scores × (1 + k1),
        1.9 with the shipped mappings' k1 = 0.9) and 3.x."""
        if self.bm25_scale is None:
            return 1.0
        return self.bm25_scale / bm25_scale(info.engine, info.version, self.bm25_k1)

    def splade_field(self, name: str) -> SpladeField:
        if name not in self.fields:
            known = ", ".join(sorted(self.fields)) or "none"
            raise EngineError(f"index {self.index!r} has no SPLADE field {name!r} (has: {known})")
        return self.fields[name]

    def meta(self) -> dict[str, Any]:
        """The `_meta.splade_es` object."""
        meta: dict[str, Any] = {
            "fields": {name: asdict(f) for name, f in self.fields.items()},
            "text_fields": list(self.text_fields),
            "analyzer": self.analyzer,
        }
        if self.bm25_scale is not None:
            meta["bm25_scale"] = self.bm25_scale
        return meta

    @classmethod
    def from_mapping(
        cls,
        index: str,
        uuid: str,
        mapping: dict[str, Any],
        settings: dict[str, Any] | None = None,
    ) -> IndexProfile:
        """Read `_meta.splade_es`, or infer from the field types when it is absent; `settings`
        (as `GET index/_settings` returns them) give the text field's BM25 k1."""
        props = mapping.get("properties", {})
        meta = (mapping.get("_meta") or {}).get(META_KEY)
        if isinstance(meta, dict):
            fields = {
                name: SpladeField(**{k: v for k, v in spec.items() if k in _FIELD_KEYS})
                for name, spec in (meta.get("fields") or {}).items()
            }
            text_fields = tuple(meta.get("text_fields") or (TEXT_FIELD,))
            return cls(
                index,
                uuid,
                fields,
                text_fields,
                str(meta.get("analyzer", "standard")),
                bm25_scale=_scale(meta.get("bm25_scale"), index),
                bm25_k1=text_field_k1(settings or {}, mapping, text_fields[0]),
            )
        fields = {
            name: SpladeField(field_type=str(spec["type"]))
            for name, spec in props.items()
            if isinstance(spec, dict) and spec.get("type") in SPARSE_TYPES
        }
        texts = [n for n, s in props.items() if isinstance(s, dict) and s.get("type") == "text"]
        text_fields = (TEXT_FIELD,) if TEXT_FIELD in texts else tuple(texts)
        analyzer = str(props.get(TEXT_FIELD, {}).get("analyzer", "standard"))
        return cls(index, uuid, fields, text_fields, analyzer, recorded=False)

    @classmethod
    def read(cls, client: OpenSearch, name: str) -> IndexProfile:
        """The profile of index `name` (or of the one index an alias points to)."""
        index = resolve_index(client, name)
        if index is None:
            raise EngineError(f"index {name!r} does not exist")
        try:
            mapping = client.indices.get_mapping(index=index)[index]["mappings"]
            settings = client.indices.get_settings(index=index)[index]["settings"]
        except (TransportError, ConnectionError) as exc:
            raise EngineError(describe_error(exc, f"index {index!r}")) from exc
        return cls.from_mapping(index, str(settings["index"].get("uuid", "")), mapping, settings)


_FIELD_KEYS = set(SpladeField.__dataclass_fields__)


def _scale(value: Any, index: str) -> float | None:
    """A recorded BM25 scale, or a one-line error for one that is not a positive number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise EngineError(
            f"index {index!r} records bm25_scale {value!r} in _meta.splade_es: "
            "expected a positive number"
        )
    return float(value)


def resolve_index(client: OpenSearch, name: str) -> str | None:
    """The concrete index behind `name` (itself, or an alias's single index); None if absent.

    An alias over several indices is refused: writing or adding a field through it would touch
    all of them.
    """
    check_index_name(name)
    try:
        if client.indices.exists_alias(name=name):
            targets = sorted(client.indices.get_alias(name=name))
            if len(targets) != 1:
                raise EngineError(
                    f"{name!r} is an alias of {len(targets)} indices ({', '.join(targets[:5])}): "
                    "give one concrete index"
                )
            return targets[0]
        return name if client.indices.exists(index=name) else None
    except (TransportError, ConnectionError) as exc:
        raise EngineError(describe_error(exc, f"index {name!r}")) from exc


def detect_analyzer(client: OpenSearch) -> Analyzer:
    """`english` where every node has the analysis-common module (stemming), else `standard`."""
    try:
        nodes = client.nodes.info(metric="plugins")["nodes"].values()
    except (TransportError, ConnectionError):
        return "standard"
    for node in nodes:
        names = {p.get("name") for p in node.get("modules", []) + node.get("plugins", [])}
        if "analysis-common" not in names:
            return "standard"
    return "english" if nodes else "standard"


@dataclass(frozen=True)
class ShardLayout:
    """Primary shards and replicas of a new index (a cluster spreads them over its nodes)."""

    shards: int = 1
    replicas: int = 0

    def __post_init__(self) -> None:
        if self.shards < 1 or self.replicas < 0:
            raise ValueError(f"bad shard layout {self.shards} shards / {self.replicas} replicas")

    def settings(self) -> dict[str, int]:
        return {"number_of_shards": self.shards, "number_of_replicas": self.replicas}


def ensure_index(
    client: OpenSearch,
    info: EngineInfo,
    index: str,
    field_name: str = "splade",
    field_type: str | None = None,
    splade: SpladeField | None = None,
    text_fields: tuple[str, ...] | None = None,
    layout: ShardLayout | None = None,
) -> IndexProfile:
    """Create `index` (recording its profile in `_meta`) or check that it can take this run.

    `layout` sets a new index's primary shards and replicas (default: the mapping's 1 and 0); an
    existing index keeps its own.

    An existing index with the field is reused only if its type, quantization and model agree;
    one without the field gets it added (drop-in upgrade) and its profile extended. Two runs
    creating the same index at once both succeed: the loser of the race checks the winner's index.
    """
    wanted = splade or SpladeField()
    target = resolve_index(client, index)
    if target is None:
        created = _create(client, info, index, field_name, field_type, wanted, layout)
        if created is not None:
            return created
        target = index  # another run created it meanwhile
    profile = IndexProfile.read(client, target)
    mapping = client.indices.get_mapping(index=target)[target]["mappings"]
    existing_type = sparse_field_type(mapping, field_name)
    if existing_type is None:
        if field_name in mapping.get("properties", {}):
            raise EngineError(f"index {target!r} already has a non-sparse field {field_name!r}")
        return _add_field(client, info, profile, field_name, field_type, wanted, text_fields)
    refuse = f"index {target!r} already maps {field_name!r} as {existing_type}"
    if existing_type not in SPARSE_TYPES:
        raise EngineError(f"{refuse}, not a sparse field; refusing to change it")
    if field_type is not None and existing_type != field_type:
        raise EngineError(
            f"{refuse}, not {field_type}; refusing to change it: "
            "pick another index name or delete it first"
        )
    recorded = profile.fields.get(field_name)
    if recorded is not None and (why := recorded.clashes_with(wanted)):
        raise EngineError(
            f"index {target!r} field {field_name!r} was filled with {why}: mixing them would "
            "give meaningless scores; use another field or index"
        )
    if recorded is None or (wanted.model and not recorded.model):
        fields = {**profile.fields, field_name: _with_type(wanted, existing_type)}
        profile = _put_meta(client, profile, fields=fields)
    return profile


def _with_type(splade: SpladeField, field_type: str) -> SpladeField:
    return SpladeField.of(splade, field_type)


def _create(
    client: OpenSearch,
    info: EngineInfo,
    index: str,
    field_name: str,
    field_type: str | None,
    splade: SpladeField,
    layout: ShardLayout | None = None,
) -> IndexProfile | None:
    """Create the index; None if another run created it first."""
    analyzer = detect_analyzer(client) if info.engine == "opensearch" else "standard"
    body = index_body(info.engine, info.version, field_name, field_type, analyzer)
    if layout is not None:
        body["settings"]["index"].update(layout.settings())
    chosen = str(body["mappings"]["properties"][field_name]["type"])
    profile = IndexProfile(
        index,
        "",
        {field_name: _with_type(splade, chosen)},
        (TEXT_FIELD,),
        analyzer,
        bm25_scale=LUCENE_BM25_SCALE,
    )
    body["mappings"]["_meta"] = {META_KEY: profile.meta()}
    try:
        client.indices.create(index=index, body=body)
    except RequestError as exc:
        if "resource_already_exists" in str(exc.error):
            return None
        raise EngineError(describe_error(exc, f"create index {index!r}")) from exc
    except (TransportError, ConnectionError) as exc:
        raise EngineError(describe_error(exc, f"create index {index!r}")) from exc
    return IndexProfile.read(client, index)


def _add_field(
    client: OpenSearch,
    info: EngineInfo,
    profile: IndexProfile,
    field_name: str,
    field_type: str | None,
    splade: SpladeField,
    text_fields: tuple[str, ...] | None,
) -> IndexProfile:
    """Drop-in upgrade: add the SPLADE field to an index made without it."""
    spec = index_body(info.engine, info.version, field_name, field_type)["mappings"]["properties"]
    chosen = str(spec[field_name]["type"])
    try:
        client.indices.put_mapping(
            index=profile.index, body={"properties": {field_name: spec[field_name]}}
        )
    except (TransportError, ConnectionError) as exc:
        raise EngineError(describe_error(exc, f"add {field_name!r} to {profile.index!r}")) from exc
    fields = {**profile.fields, field_name: _with_type(splade, chosen)}
    return _put_meta(client, profile, fields=fields, text_fields=text_fields)


def _put_meta(
    client: OpenSearch,
    profile: IndexProfile,
    fields: dict[str, SpladeField],
    text_fields: tuple[str, ...] | None = None,
) -> IndexProfile:
    """Rewrite `_meta.splade_es`, keeping any other `_meta` keys the index has."""
    updated = IndexProfile(
        profile.index,
        profile.uuid,
        fields,
        text_fields or profile.text_fields,
        profile.analyzer,
        bm25_scale=profile.bm25_scale,
        bm25_k1=profile.bm25_k1,
    )
    try:
        mapping = client.indices.get_mapping(index=profile.index)[profile.index]["mappings"]
        meta = {**(mapping.get("_meta") or {}), META_KEY: updated.meta()}
        client.indices.put_mapping(index=profile.index, body={"_meta": meta})
    except NotFoundError as exc:
        raise EngineError(f"index {profile.index!r} disappeared during the run") from exc
    except (TransportError, ConnectionError) as exc:
        raise EngineError(describe_error(exc, f"_meta of {profile.index!r}")) from exc
    return updated


MERGE_TIMEOUT_S = 3600


def force_merge(client: OpenSearch, index: str) -> None:
    """Merge `index` to one segment and wait for it. The merge takes as long as the index is big;
    under the client's default timeout it would be retried, and the retry queues behind the first
    merge on the node's one-thread force-merge pool (CI timed out exactly so), so it gets the time
    it needs in one request."""
    client.indices.forcemerge(
        index=index, max_num_segments=1, params={"request_timeout": MERGE_TIMEOUT_S}
    )


def index_size_bytes(client: OpenSearch, index: str, force_merge_first: bool = False) -> int:
    """Primary store size in bytes after a refresh and a flush (segments on disk); with
    `force_merge_first`, merged to one segment first so sizes compare across indexes."""
    client.indices.refresh(index=index)
    if force_merge_first:
        force_merge(client, index)
    client.indices.flush(index=index)
    stats = client.indices.stats(index=index, metric="store")
    return int(stats["indices"][index]["primaries"]["store"]["size_in_bytes"])
