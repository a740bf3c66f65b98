"""The site agent: a gRPC server (mutual TLS) that runs job fragments in the sandbox.

Run it with ``blindgate site serve --config site.yaml``; see :mod:`sandbox.agent.config`
for the file.
"""
