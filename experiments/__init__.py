"""The paper's experiments, run as ``python -m experiments.<name> <command>`` from the repository root."""
