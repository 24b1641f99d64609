"""The study and space language: study and search-space files as validated data, budget-aware sampling,
seed methods fitted to a budget. No torch, no Ray, no storage."""
