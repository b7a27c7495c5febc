"""8×8 block transforms and the random shift of the Watson losses (docs/reference.md §3, §6).

Layout. NHWC images, shifted if the loss's random shift applies (:func:`shift`), become blocks
(N, B, C, 8, 8) (:func:`pixel_blocks`: B = H/8 · W/8 blocks row-major, each block contiguous), the planes
the loss works on are mixed from the channels blockwise (:func:`block_planes`: grey, or Y, Cb, Cr), and a
transform maps the two last axes to frequencies (u vertical, v horizontal): coefficients (N, B, C, U, V).
The loss's per-channel parameters broadcast along the three last axes, and the matrix products contract
the two last where they lie (XLA's CPU matrix products want the contracted axes last).

Modules, one job each:

- :mod:`.layout`: images ↔ blocks, and the planes mixed from them;
- :mod:`.kernels`: the DCT and DFT matrices, the DFT's butterflies and FFT, the choice of DFT
  implementation (:data:`DFT_BY_BACKEND`, :func:`default_dft_implementation`);
- :mod:`.joint`: the transforms of several images in one computation, with their derivatives
  (:func:`block_dcts`, :func:`block_dfts`, :func:`block_dft`);
- :mod:`.shifting`: the random shift and its derivative.
"""

from .joint import block_dcts, block_dft, block_dfts
from .kernels import (
    DFT_BY_BACKEND,
    DFT_IMPLEMENTATIONS,
    FALLBACK_DFT,
    HALF,
    HIGHEST,
    block_dct,
    dct_matrix,
    default_dft_implementation,
    dft_implementation,
    dft_matrices,
)
from .layout import BLOCK, COL_AXIS, ROW_AXIS, block_planes, from_blocks, pixel_blocks
from .shifting import SHIFT_AXES, random_offset, shift

__all__ = [
    "BLOCK",
    "COL_AXIS",
    "DFT_BY_BACKEND",
    "DFT_IMPLEMENTATIONS",
    "FALLBACK_DFT",
    "HALF",
    "HIGHEST",
    "ROW_AXIS",
    "SHIFT_AXES",
    "block_dct",
    "block_dcts",
    "block_dft",
    "block_dfts",
    "block_planes",
    "dct_matrix",
    "default_dft_implementation",
    "dft_implementation",
    "dft_matrices",
    "from_blocks",
    "pixel_blocks",
    "random_offset",
    "shift",
]
