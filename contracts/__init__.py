"""Blindgate licences: signed data-use agreements."""
