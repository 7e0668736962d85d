"""Several nodes of one cluster on 127.0.0.1: start, stop and report them together.

Why: sharding, replicas, per-shard statistics and node loss only show on a real multi-node
cluster. Node ``i`` of an ``N``-node cluster based on ``spec`` listens on HTTP ``spec.port + i``
and transport ``spec.port + i + 100``; each member is an ordinary node of
:mod:`~splade_es_workshop.engines.node` whose spec names every member's HTTP port (``spec.cluster``), so
it seeds discovery with all of them instead of running as ``single-node``. All members are spawned
before any is awaited: a cluster manager is elected only once a majority is up.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from opensearchpy.exceptions import TransportError

from .node import (
    _client,
    _quiet_client,
    await_healthy,
    spawn_unless_running,
    start,
    start_wait,
    status,
    stop,
    url_of,
)
from .spec import EngineSpec, LauncherError

MAX_NODES = 9


def cluster_members(spec: EngineSpec, nodes: int) -> list[EngineSpec]:
    """The specs of an ``nodes``-node cluster's members (``[spec]`` itself for one node)."""
    if not 1 <= nodes <= MAX_NODES:
        raise LauncherError(f"bad node count {nodes}: use 1..{MAX_NODES}")
    if nodes == 1:
        return [spec]
    ports = tuple(range(spec.port, spec.port + nodes))
    if ports[-1] > 65435:
        raise LauncherError(f"bad port {spec.port}: {nodes} nodes need ports up to {ports[-1]}")
    if spec.port + 100 <= ports[-1]:  # this node's transport port is the last node's HTTP port
        raise LauncherError(f"{nodes} nodes from port {spec.port} overlap their transport ports")
    return [replace(spec, port=port, cluster=ports) for port in ports]


def cluster_urls(spec: EngineSpec, nodes: int) -> str:
    """Every member's URL, comma-separated (what ``--url`` / ``SPLADE_ES_URL`` take)."""
    return ",".join(url_of(member) for member in cluster_members(spec, nodes))


def start_cluster(spec: EngineSpec, nodes: int = 1, wait_s: float | None = None) -> str:
    """Start the cluster's nodes (those not running), wait until all of them have joined.

    Returns the members' URLs, comma-separated.
    """
    members = cluster_members(spec, nodes)
    if nodes == 1:
        return start(spec, wait_s)
    wait = start_wait(wait_s)
    deadline = time.monotonic() + wait
    spawned = [spawn_unless_running(member) for member in members]
    for member, fresh in zip(members, spawned, strict=True):
        await_healthy(member, max(deadline - time.monotonic(), 1.0), fresh)
    _await_joined(members, max(deadline - time.monotonic(), 1.0))
    return cluster_urls(spec, nodes)


def _await_joined(members: list[EngineSpec], wait: float) -> None:
    """Wait for the first member to see all of them: a member left over from another cluster
    (or one that cannot reach the seeds) answers health on its own but never joins."""
    deadline = time.monotonic() + wait
    seen = 0
    while True:
        seen = _node_count(members[0])
        if seen == len(members) or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if seen != len(members):
        raise LauncherError(
            f"the cluster on ports {members[0].port}-{members[-1].port} has {seen} of "
            f"{len(members)} nodes after {wait:.0f}s: see each node's console.log under "
            "the run dir, or `engine stop --nodes N` and start again"
        )


def _node_count(spec: EngineSpec) -> int:
    client = _client(spec)
    try:
        with _quiet_client():
            health: Any = client.cluster.health(request_timeout=5)
    except TransportError:
        return 0
    finally:
        client.close()
    return int(health.get("number_of_nodes", 0)) if isinstance(health, dict) else 0


def stop_cluster(spec: EngineSpec, nodes: int = 1) -> bool:
    """Stop every member; True if any was running."""
    stopped = [stop(member) for member in cluster_members(spec, nodes)]
    return any(stopped)


def cluster_status(spec: EngineSpec, nodes: int = 1) -> dict[str, Any]:
    """One node's status as :func:`~splade_es_workshop.engines.node.status` gives it; for a cluster, each
    member's under ``nodes`` and how many of them the cluster counts."""
    members = cluster_members(spec, nodes)
    if nodes == 1:
        return status(spec)
    each = [status(member) for member in members]
    up = [m for m, node in zip(members, each, strict=True) if node["running"]]
    return {
        "running": len(up) == len(members),
        "url": cluster_urls(spec, nodes),
        "cluster_nodes": _node_count(up[0]) if up else 0,
        "nodes": each,
    }
