"""The search: spaces and study files as data, samplers, budgets, the storage and its records, the
proposer between the sampler and the workers, and the runners (Ray Tune, inline, reseed).

Imports core and training; the analysis layer reads what it stores.
"""
