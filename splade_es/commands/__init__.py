"""The core commands of `splade-es`, one module per concern; `splade_es.cli` names them all."""
