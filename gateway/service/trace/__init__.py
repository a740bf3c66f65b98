"""The trace as use cases: the Merkle log over the store, checkpoints, proofs, receipts, entries."""
