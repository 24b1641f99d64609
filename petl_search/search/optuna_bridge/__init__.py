"""Optuna and its storage: samplers, the proposer, the storage (the one place for its calls), the records
read from it, the driver's lease and Pareto arithmetic."""
