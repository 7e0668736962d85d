"""`python -m splade_es.demo` (what `make demo` runs)."""

from . import demo

demo()
