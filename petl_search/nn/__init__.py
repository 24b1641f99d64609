"""The Δh modules and how they are put on a Hugging Face model (hooks, the attention interface),
merged into its weights, saved and loaded. Imports core only; knows nothing of training or search."""
