"""Shared by every use case: the service context, access checks, tracing, paging."""
