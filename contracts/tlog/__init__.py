"""The pure core of a tamper-evident log, shared by the gateway's trace and a site's own log.

RFC 6962 / 9162 Merkle trees (:mod:`contracts.tlog.merkle`), compact ranges and an
in-memory tree (:mod:`contracts.tlog.tree`), C2SP signed checkpoints
(:mod:`contracts.tlog.checkpoint`), RFC 8785 canonical JSON (:mod:`contracts.tlog.jcs`)
and the errors they raise (:mod:`contracts.tlog.errors`).  Standard library and
``cryptography`` only: no storage, no clock, no network.
"""
