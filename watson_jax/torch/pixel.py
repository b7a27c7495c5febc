"""L1 and L2 as torch modules (the maths: :mod:`watson_jax.losses.pixel`, docs/reference.md §1).

The torch side differs only in layout: ``elementwise=True`` returns the terms NCHW, and ``spatial=True``
those terms summed over channels, (N, H, W), by :meth:`Loss.distance_map`.
"""

from __future__ import annotations

import torch

from .base import Loss


class L1(Loss):
    """L1 distance of each image pair: Σ_{c,h,w} |x − y|, (N,). The derivative of |·| at 0 is 0."""

    def elementwise_map(self, x, y, *, generator=None):
        return torch.abs(x - y)

    def distance(self, x, y, *, generator=None):
        return self.elementwise_map(x, y).sum(dim=(1, 2, 3))


class L2(Loss):
    """L2 distance of each image pair: Σ_{c,h,w} (x − y)², (N,) (the squared error, no square root)."""

    def elementwise_map(self, x, y, *, generator=None):
        return torch.square(x - y)

    def distance(self, x, y, *, generator=None):
        return self.elementwise_map(x, y).sum(dim=(1, 2, 3))
