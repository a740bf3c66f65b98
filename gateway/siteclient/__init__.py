"""The gateway's outbound link to site agents: pinned mutual-TLS gRPC clients and their pool."""
