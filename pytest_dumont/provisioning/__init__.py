"""Renting an instance and giving it back: the provisioner and its contracts, the pool, the instance factory, cost
records, timed commands and the machines that failed to boot. Knows nothing of pytest sessions, safety or reports."""
