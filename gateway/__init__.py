"""Blindgate control plane: service layer, transports, store, trace, metrics, CLI."""
