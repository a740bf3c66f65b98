"""The stand-in for syft's job helpers (see :mod:`.syft`)."""
