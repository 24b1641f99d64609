"""Ray and processes: the Ray Tune runner, MO-ASHA early stopping, the inline runner and reseeds."""
