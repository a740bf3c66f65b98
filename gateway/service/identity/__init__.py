"""Organisations, principals and API keys."""
