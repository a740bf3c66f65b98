"""The ``blindgate`` command line."""
