"""Policies, licences, policy decisions and the privacy-budget ledger."""
