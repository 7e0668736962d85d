"""The encoder as an HTTP service the cluster can call (`splade-es serve`).

- `weights`: what the service answers per text (engine feature names, the external path's weights).
- `batching`: concurrent requests merged into one model call, behind a bounded queue.
- `app`: the Starlette app: routes, limits, health and readiness.
- `cli`: `splade-es serve` and `splade-es engine connect-model` (ml-commons side in
  `splade_es.mlcommons`).
"""
