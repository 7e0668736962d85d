"""The splade-es workshop: local engine nodes (`engines`), Beam runner clusters (`runners`) and
the demo, for trying and testing the toolkit. A separate distribution (splade-es-workshop):
production installs of splade-es carry none of it."""
