"""The encoder service over real HTTP with the real splade-tiny model (no engine)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from splade_es.query import QueryPruning
from splade_es.serve.app import ServiceLimits
from splade_es.serve.weights import document_weights, query_weights
from splade_es.sparse import DEFAULT_QUANTIZATION_FACTOR
from tests.serve.conftest import FaultyEncoder, running_service

TEXTS = ["vitamin d deficiency and cancer risk", "statins lower cholesterol", "x"]


def close(got: dict[str, float], want: dict[str, float]) -> bool:
    """Equal up to batch-padding float noise (a term near 0 may be present on one side only)."""
    return bool(got) and all(
        abs(got.get(k, 0.0) - want.get(k, 0.0)) <= 1e-6 + 1e-4 * abs(want.get(k, 0.0))
        for k in {*got, *want}
    )


def post(url: str, side: str, texts: object, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{url}/encode/{side}", json={"texts": texts}, timeout=60, **kwargs)  # type: ignore[arg-type]


def test_documents_are_what_index_vectors_indexes(service_url: str, splade_tiny) -> None:
    response = post(service_url, "documents", TEXTS)
    assert response.status_code == 200
    expected = [v.quantize() for v in splade_tiny.encode_documents(TEXTS)]
    assert response.json() == expected
    assert all(isinstance(w, int) for row in response.json() for w in row.values())


def test_queries_are_the_rewriters_query_tokens(service_url: str, splade_tiny) -> None:
    """One query per request (as neural_sparse sends them) is exactly the rewriter's query."""
    from splade_es.query import QueryRewriter

    rewriter = QueryRewriter(splade_tiny, engine="opensearch", form="neural_sparse")
    for text in TEXTS:
        response = post(service_url, "queries", [text])
        assert response.status_code == 200
        clause = rewriter.body(text)["query"]
        assert response.json() == [clause["neural_sparse"]["splade"]["query_tokens"]]


def test_batched_queries_match_single_ones_up_to_padding(service_url: str, splade_tiny) -> None:
    """Texts padded into one batch differ from single runs only by float rounding (~1e-6)."""
    response = post(service_url, "queries", TEXTS)
    for text, answer in zip(TEXTS, response.json(), strict=True):
        alone = query_weights(splade_tiny.encode_queries([text])[0])
        assert close(answer, alone)


def test_empty_list_and_empty_text(service_url: str) -> None:
    assert post(service_url, "documents", []).json() == []
    response = post(service_url, "queries", [""])
    assert response.status_code == 200 and len(response.json()) == 1


def test_health_ready_metrics(service_url: str) -> None:
    assert httpx.get(f"{service_url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{service_url}/ready").json()
    assert ready["ready"] is True
    assert ready["profile"]["model"] == "splade-tiny"
    assert ready["profile"]["quantization"] == DEFAULT_QUANTIZATION_FACTOR
    metrics = httpx.get(f"{service_url}/metrics").json()
    assert {"requests", "model_calls", "merged_calls", "queued"} <= set(metrics)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"texts": ["a"', 400, "malformed JSON"),
        (b"\xff\xfe", 400, "malformed JSON"),
        (b'["a", "b"]', 422, '{"texts"'),
        (b'{"text": ["a"]}', 422, '{"texts"'),
        (b'{"texts": "a"}', 422, "'texts' must be a list of strings, not str"),
        (b'{"texts": ["a", 3]}', 422, "texts[1] is int"),
        (b'{"texts": ["a"], "top_k": 3}', 422, "unknown field(s) ['top_k']"),
    ],
)
def test_malformed_requests_get_4xx_with_reason(
    service_url: str, body: bytes, status: int, reason: str
) -> None:
    response = httpx.post(f"{service_url}/encode/documents", content=body)
    assert response.status_code == status
    assert reason in response.json()["error"]


def test_unknown_route_and_method(service_url: str) -> None:
    assert httpx.post(f"{service_url}/encode/passages", json={"texts": []}).status_code == 404
    response = httpx.get(f"{service_url}/encode/queries")
    assert response.status_code == 405 and "GET" in response.json()["error"]


def test_size_limits(splade_tiny) -> None:
    limits = ServiceLimits(max_body_bytes=200, max_texts=3)
    with running_service(lambda: splade_tiny, limits) as url:
        big = post(url, "documents", ["word " * 100])
        assert big.status_code == 413 and "limit is 200" in big.json()["error"]

        def chunks():  # no Content-Length: the limit applies while reading
            for _ in range(10):
                yield b'{"texts": ["' + b"a" * 50 + b'"]}'

        streamed = httpx.post(f"{url}/encode/documents", content=chunks())
        assert streamed.status_code == 413
        many = post(url, "queries", ["a", "b", "c", "d"])
        assert many.status_code == 413 and "4 texts" in many.json()["error"]
        assert post(url, "queries", ["a", "b", "c"]).status_code == 200


def test_concurrent_requests_share_model_calls(splade_tiny) -> None:
    """With a merge window, concurrent requests are answered by fewer model calls, each request
    getting exactly its own rows."""
    limits = ServiceLimits(max_batch_texts=64, max_wait_s=0.5)
    texts = [f"query number {i} about {w}" for i, w in enumerate(["cells", "genes"] * 6)]
    with running_service(lambda: splade_tiny, limits) as url:
        before = httpx.get(f"{url}/metrics").json()
        start = threading.Barrier(len(texts))

        def one(text: str) -> httpx.Response:
            start.wait()
            return post(url, "queries", [text])

        with ThreadPoolExecutor(len(texts)) as pool:
            responses = list(pool.map(one, texts))
        after = httpx.get(f"{url}/metrics").json()
    assert all(r.status_code == 200 for r in responses)
    assert after["requests"] - before["requests"] == len(texts)
    assert after["model_calls"] - before["model_calls"] < len(texts)
    assert after["merged_calls"] >= 1 and after["max_requests_per_call"] >= 2
    for text, response in zip(texts, responses, strict=True):
        alone = query_weights(splade_tiny.encode_queries([text])[0], 100.0, QueryPruning())
        assert close(response.json()[0], alone)


def test_documents_and_queries_are_never_merged_into_one_call(splade_tiny) -> None:
    limits = ServiceLimits(max_batch_texts=64, max_wait_s=0.3)
    jobs = [("documents" if i % 2 else "queries", f"text {i} on sleep") for i in range(8)]
    with running_service(lambda: splade_tiny, limits) as url:
        start = threading.Barrier(len(jobs))

        def one(job: tuple[str, str]) -> httpx.Response:
            start.wait()
            return post(url, job[0], [job[1]])

        with ThreadPoolExecutor(len(jobs)) as pool:
            responses = list(pool.map(one, jobs))
        assert httpx.get(f"{url}/metrics").json()["model_calls"] >= 2
    for (side, text), response in zip(jobs, responses, strict=True):
        (answer,) = response.json()
        if side == "documents":
            assert all(isinstance(w, int) for w in answer.values())
            alone_q = splade_tiny.encode_documents([text])[0].quantize()
            # padding in a merged call may move a weight across a rounding boundary: at most 1
            assert all(abs(answer.get(k, 0) - alone_q.get(k, 0)) <= 1 for k in {*answer, *alone_q})
            assert answer.keys() & alone_q.keys()
        else:
            alone = query_weights(splade_tiny.encode_queries([text])[0])
            assert close(answer, alone)


def test_a_failing_text_fails_only_its_request(splade_tiny) -> None:
    encoder = FaultyEncoder(splade_tiny)
    limits = ServiceLimits(max_batch_texts=64, max_wait_s=0.5)
    texts = ["good one", f"bad {FaultyEncoder.fail_marker}", "good two", "good three"]
    with running_service(lambda: encoder, limits) as url:
        start = threading.Barrier(len(texts))

        def one(text: str) -> httpx.Response:
            start.wait()
            return post(url, "documents", [text])

        with ThreadPoolExecutor(len(texts)) as pool:
            responses = list(pool.map(one, texts))
        statuses = [r.status_code for r in responses]
        assert statuses == [200, 500, 200, 200]
        assert "injected encoder failure" in responses[1].json()["error"]
        for text, response in zip(texts, responses, strict=True):
            if response.status_code == 200:
                assert response.json() == [
                    document_weights(splade_tiny.encode_documents([text])[0])
                ]
        assert httpx.get(f"{url}/health").status_code == 200
        assert post(url, "documents", ["still serving"]).status_code == 200
        assert httpx.get(f"{url}/metrics").json()["failed_requests"] == 1


def test_full_queue_answers_503(splade_tiny) -> None:
    encoder = FaultyEncoder(splade_tiny)
    limits = ServiceLimits(max_queue=1, max_wait_s=0.0)
    with running_service(lambda: encoder, limits) as url, ThreadPoolExecutor(2) as pool:
        blocked = pool.submit(post, url, "documents", [f"a {FaultyEncoder.block_marker}"])
        assert encoder.blocked.wait(timeout=60)  # the worker is inside the model call
        waiting = pool.submit(post, url, "documents", ["b"])
        for _ in range(600):  # until the second request sits in the queue
            if httpx.get(f"{url}/metrics").json()["queued"] == 1:
                break
            threading.Event().wait(0.05)
        refused = post(url, "documents", ["c"])
        encoder.release.set()
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1" and "busy" in refused.json()["error"]
        assert blocked.result().status_code == 200 and waiting.result().status_code == 200
        assert httpx.get(f"{url}/metrics").json()["rejected_queue_full"] == 1


def test_not_ready_until_the_model_is_loaded(splade_tiny) -> None:
    loaded = threading.Event()

    def slow_load():
        loaded.wait(timeout=60)
        return splade_tiny

    with running_service(slow_load, wait_ready=False) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url}/ready").status_code == 503
        response = post(url, "queries", ["a"])
        assert response.status_code == 503 and "loading" in response.json()["error"]
        loaded.set()
        for _ in range(600):
            if httpx.get(f"{url}/ready").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert post(url, "queries", ["a"]).status_code == 200


def test_a_model_that_fails_to_load_is_reported_not_fatal() -> None:
    def broken_load():
        raise OSError("no such model folder: /nowhere")

    with running_service(broken_load, wait_ready=False) as url:
        for _ in range(600):
            ready = httpx.get(f"{url}/ready").json()
            if "error" in ready:
                break
            threading.Event().wait(0.05)
        assert "no such model folder" in ready["error"]
        assert httpx.get(f"{url}/health").status_code == 200
        assert "no such model folder" in post(url, "documents", ["a"]).json()["error"]


def test_pair_and_inference_free_models_serve_both_routes(tiny_models) -> None:
    from splade_es.encoder import SpladeEncoder

    free = SpladeEncoder.load(str(tiny_models["inference-free"]), device="cpu")
    with running_service(lambda: free) as url:
        queries = post(url, "queries", ["vitamin d cancer"]).json()
        assert queries == [pytest.approx({"vitamin": 0.035, "d": 0.0125, "cancer": 0.02})]
        docs = post(url, "documents", ["vitamin d cancer"]).json()
        assert docs == [free.encode_documents(["vitamin d cancer"])[0].quantize()]
    pair = SpladeEncoder.load(
        str(tiny_models["doc"]), query_model=str(tiny_models["query"]), device="cpu"
    )
    with running_service(lambda: pair) as url:
        text = ["statins and muscle pain"]
        assert post(url, "documents", text).json() == [pair.encode_documents(text)[0].quantize()]
        expected = query_weights(pair.encode_queries(text)[0])
        assert post(url, "queries", text).json() == [pytest.approx(expected, rel=1e-6)]
        assert json.dumps(expected) != json.dumps(query_weights(pair.encode_documents(text)[0]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-batch", "0"], "'--max-batch': 0 is not in the range x>=1"),
        (["--max-queue", "0"], "'--max-queue': 0 is not in the range x>=1"),
        (["--quantization", "-1"], "'--quantization': '-1' is not in [0, inf]"),
        (["--max-wait-ms", "-5"], "'--max-wait-ms': '-5' is not in [0, inf]"),
    ],
)
def test_serve_refuses_bad_options_in_one_line(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from splade_es.cli import main

    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_the_serve_command_answers_the_profile_of_what_it_serves(tiny_models) -> None:
    """`splade-es serve` as a user starts it: /ready names the pair's two models and the factor
    it was given, which `connect-model` then records in the index."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["serve", "--port", str(port), "--quantization", "0", "--device", "cpu"]
    args += ["--model", str(tiny_models["doc"]), "--query-model", str(tiny_models["query"])]
    command = [sys.executable, "-c", "from splade_es.cli import main; main()", *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "serve never became ready"
            time.sleep(0.2)
        profile = response.json()["profile"]
        assert profile["model"] == str(tiny_models["doc"].resolve())
        assert profile["query_model"] == str(tiny_models["query"].resolve())
        assert profile["quantization"] is None
    finally:
        process.terminate()
        process.wait(timeout=30)
