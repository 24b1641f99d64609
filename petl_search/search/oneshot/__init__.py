"""The one-shot pipeline: a supernet's designs from a space, the study's stages, a stage in a child process."""
