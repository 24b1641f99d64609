"""Training one candidate: tasks and their data, offline metrics, models and the trainer.

Imports core and nn; knows nothing of search spaces, studies or storages. `config.py` (TrainConfig)
imports no torch, so study files are validated without loading it.
"""
