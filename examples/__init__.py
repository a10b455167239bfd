"""Runnable examples; see examples/README.md. Not part of the installed package."""
