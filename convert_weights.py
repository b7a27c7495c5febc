#!/usr/bin/env python
"""Convert the original .pth weights to watson_jax weights, or back (--to-torch). See --help."""

import sys

from watson_jax.convert import main

if __name__ == "__main__":
    sys.exit(main())
