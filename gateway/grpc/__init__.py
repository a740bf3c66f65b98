"""The gRPC transport: a thin shell over the service layer."""
