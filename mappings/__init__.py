"""Index settings and mappings per engine and major version (JSON), installed as the package
`splade_es.mapping_files` (setup.cfg maps it to this folder; `splade_es.mappings` reads it)."""
