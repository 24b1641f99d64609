"""The search, in four parts, each importing only the parts before it (tests/test_layers.py checks):

    language/       the study and space language: YAML as validated data, budget-aware sampling of a
                    space, seed methods fitted to a budget. Plain data: no torch, no Optuna storage.
    optuna_bridge/  Optuna and its storage: the sampler a study asks for, the proposer between the
                    sampler and the workers, the storage (the one place for its calls), the records
                    read from it, the driver's lease, Pareto arithmetic.
    oneshot/        the one-shot pipeline: a supernet's designs, its stages, a stage in a child process.
    runner/         Ray and processes: the Ray Tune runner, MO-ASHA, the inline runner and reseeds.

Imports core, nn and training; the analysis layer reads what it stores.
"""
