"""The encoder as an HTTP service the cluster can call (`splade-es serve`).

    splade-es serve --model splade-tiny --port 8080 --max-batch 32 --max-queue 64
    splade-es connect-model --url http://127.0.0.1:9200 \
        --service-url http://127.0.0.1:8080 --index scifact
    # plain {"title", "text"} documents indexed into `scifact` now get their `splade` field from
    # the service; search with
    # {"neural_sparse": {"splade": {"query_text": "...", "model_id": <query model id>}}}

Routes: `POST /encode/documents` and `POST /encode/queries` take `{"texts": [...]}` and answer
`[{feature: weight}, ...]`; `GET /health` (alive), `GET /ready` (model loaded), `GET /metrics`
(batching counters). Documents come back quantized as `index-vectors` indexes them, queries scaled
as the query rewriter sends them, so both paths score alike (`weights`).

- `weights`: what the service answers per text.
- `batching`: concurrent requests merged into one model call, behind a bounded queue.
- `app`: the Starlette app: routes, limits, health and readiness.
- `server`: the app under uvicorn in a thread (tests, benchmarks).
- `cli`: `splade-es serve` and `splade-es connect-model` (ml-commons side in
  `splade_es.mlcommons`, which also documents how ingest failures are handled).
"""
