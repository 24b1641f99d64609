"""What a study found, from its storage: fronts, hypervolume, dimension effects, comparisons over seeds,
the paper's questions, the dashboard and the Markdown report. Pure functions of trial records, except
the renderers. Imports every lower layer; nothing below imports it."""
