"""Blindgate data plane: site agent and the isolated runner for job fragments."""
