"""Blindgate policy engine: pure, I/O-free decisions on job descriptions."""
