"""``python -m watson_jax``: the command line (see :mod:`watson_jax.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
