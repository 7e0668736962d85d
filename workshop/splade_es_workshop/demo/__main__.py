"""`python -m splade_es_workshop.demo` (what `make demo` runs)."""

from . import demo

demo()
