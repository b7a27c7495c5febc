"""Code shared by every experiment, written once: distributed start-up, mesh and batch sharding, input
pipelines, checkpoints with the data-iterator state, progress and logs from process 0, figure helpers."""
