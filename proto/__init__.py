"""Blindgate protocol definitions and generated gRPC code."""
