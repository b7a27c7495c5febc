"""The numbers and parameter layouts every implementation of the losses shares (numpy and stdlib only).

Both the JAX losses (:mod:`watson_jax.losses`, :mod:`watson_jax.color`) and the PyTorch modules
(:mod:`watson_jax.torch`) import these from here, so each fact is written once. Nothing here imports a
framework; arrays are numpy float32 where the losses use them as float32 tables. The maths each constant
takes part in is given in docs/reference.md (the section named in each comment).
"""

from __future__ import annotations

import numpy as np

# -- block transforms (docs/reference.md §3) --------------------------------------------------------------

#: Side of the square blocks the Watson losses cut images into.
BLOCK = 8
#: Bins of the one-sided 8×5 DFT whose coefficients are real for real blocks: their phase is 0 or π.
REAL_BINS = ((0, 0), (0, 4), (4, 0), (4, 4))

# -- Watson-DCT and Watson-DFT (docs/reference.md §4, §5) -------------------------------------------------

#: ε of the Watson masking, pooling, DFT amplitudes and phases.
WATSON_EPS = 1e-10
#: cos(Δφ) is scaled by this before arccos so that the derivative of arccos stays finite.
ACOS_SHRINK = 1 - 1e-7
#: The block transforms of the Watson losses.
TRANSFORMS = ("dct", "dft")
#: Parameter groups of a colour Watson loss, one per YCbCr channel (state-dict prefixes of the reference).
YCBCR_CHANNELS = ("ly", "lcb", "lcr")

#: Watson (1993) luminance thresholds, rows u (vertical frequency), columns v.
WATSON_TABLE = np.array(
    [
        [1.40, 1.01, 1.16, 1.66, 2.40, 3.43, 4.79, 6.56],
        [1.01, 1.45, 1.32, 1.52, 2.00, 2.71, 3.67, 4.93],
        [1.16, 1.32, 2.24, 2.59, 2.98, 3.64, 4.60, 5.88],
        [1.66, 1.52, 2.59, 3.77, 4.55, 5.30, 6.28, 7.60],
        [2.40, 2.00, 2.98, 4.55, 6.15, 7.46, 8.71, 10.17],
        [3.43, 2.71, 3.64, 5.30, 7.46, 9.62, 11.58, 13.51],
        [4.79, 3.67, 4.60, 6.28, 8.71, 11.58, 14.50, 17.29],
        [6.56, 4.93, 5.88, 7.60, 10.17, 13.51, 17.29, 21.15],
    ]
)

#: Untuned values of one channel's parameters before the log/logit reparametrisation:
#: t = thresholds, alpha = luminance-masking exponent, w = contrast-masking weight, beta = pooling exponent,
#: w_phase = phase weight (DFT only).
WATSON_DCT_INIT = {"t": WATSON_TABLE, "alpha": 0.649, "w": 0.7, "beta": 4.0}
WATSON_DFT_INIT = {"t": np.ones((BLOCK, BLOCK // 2 + 1)), "alpha": 0.1, "w": 0.2, "beta": 1.0}
#: w_phase_tild of the untuned DFT (w_phase = exp(-2)).
WATSON_DFT_PHASE_TILD = -2.0

# -- colour (docs/reference.md §6) ------------------------------------------------------------------------

#: Grey = 0.3 R + 0.59 G + 0.11 B (the reference's greyscale conversion).
GREY_WEIGHTS = (0.3, 0.59, 0.11)
#: YCbCr = M · RGB + offset, per pixel (JPEG / BT.601 full range).
YCBCR_MATRIX = np.array(
    [[0.299, 0.587, 0.114], [-0.1687, -0.3313, 0.5], [0.5, -0.4187, -0.0813]], dtype=np.float32
)
YCBCR_OFFSET = np.array([0.0, 0.5, 0.5], dtype=np.float32)

# -- Adaptive (docs/reference.md §7) ----------------------------------------------------------------------

#: K of the Adaptive loss's colour step: each row r of 3 consecutive values becomes YUV_SCALE · r K.
YUV_MATRIX = np.array(
    [
        [0.299, -0.14714119, 0.61497538],
        [0.587, -0.28886916, -0.51496512],
        [0.114, 0.43601035, -0.10001026],
    ],
    np.float32,
)
#: Scale applied to the YUV values (the robust-loss package's constant).
YUV_SCALE = 1.580227820074
#: Range of the robust loss's shape parameter α and lower bound of its scale.
ALPHA_LO, ALPHA_HI = 0.001, 1.999
SCALE_LO = 1e-5
#: ε of the Adaptive loss: float32 machine epsilon.
ADAPTIVE_EPS = float(np.finfo(np.float32).eps)
#: The image size the shipped Adaptive weights were trained for: (C, H, W).
PRETRAINED_SIZE = (3, 64, 64)

# -- Deeploss (docs/reference.md §8) ----------------------------------------------------------------------

#: ε of the feature normalisation of Deeploss.
DEEPLOSS_EPS = 1e-10
#: LPIPS's ScalingLayer constants, per RGB channel: (x − shift) / scale, on the [0, 1] images as they are.
LPIPS_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
LPIPS_SCALE = np.array([0.458, 0.448, 0.450], np.float32)

#: VGG16 configuration D: the torchvision ``features`` indices of the 3×3 convolutions, slice by slice
#: (a 2×2 max-pool starts every slice after the first), each as (index, in channels, out channels).
VGG16_CONVS = (
    ((0, 3, 64), (2, 64, 64)),
    ((5, 64, 128), (7, 128, 128)),
    ((10, 128, 256), (12, 256, 256), (14, 256, 256)),
    ((17, 256, 512), (19, 512, 512), (21, 512, 512)),
    ((24, 512, 512), (26, 512, 512), (28, 512, 512)),
)

#: SqueezeNet 1.1 Fire modules: (``features`` index, in, squeeze, expand 1×1, expand 3×3).
SQUEEZE_FIRES = (
    (3, 64, 16, 64, 64),
    (4, 128, 16, 64, 64),
    (6, 128, 32, 128, 128),
    (7, 256, 32, 128, 128),
    (9, 256, 48, 192, 192),
    (10, 384, 48, 192, 192),
    (11, 384, 64, 256, 256),
    (12, 512, 64, 256, 256),
)
#: SqueezeNet 1.1 taps (LPIPS slices [0:2], [2:5], [5:8], [8:10], [10:11], [11:12], [12:13]): the Fire
#: modules of each slice after the first, and whether a ceil-mode 3×3/2 max-pool starts it.
SQUEEZE_SLICES = (
    ((3, 4), True),
    ((6, 7), True),
    ((9,), True),
    ((10,), False),
    ((11,), False),
    ((12,), False),
)

# -- SSIM (docs/reference.md §2) --------------------------------------------------------------------------

#: Gaussian window side and standard deviation; the stabilising constants (K1 L)², (K2 L)² with L = 1.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
