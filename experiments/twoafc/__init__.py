"""The 2AFC experiment: BAPPS data, evaluation and tuning of the losses (docs/reference.md §10)."""
