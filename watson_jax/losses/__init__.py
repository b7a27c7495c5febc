"""Metric families. Each module defines ``init_params(...)`` and a pure ``distance(params, x, y, ...)``
that returns one distance per image, shape (N,)."""
