"""Emergency brakes: an auditor suspends an operator organisation, a principal or a
licence at once, and only an auditor lifts it."""
