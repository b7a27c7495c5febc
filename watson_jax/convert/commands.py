"""The converter's command and options as messages name them (commands a pip install has)."""

from __future__ import annotations

import os

#: The converter's command (also ``python -m watson_jax convert``).
CONVERT_COMMAND = "watson-jax convert"
#: The option converting each ImageNet backbone (by its file stem).
BACKBONE_FLAGS = {"vgg16": "--vgg16", "squeezenet1_1": "--squeezenet"}


def backbone_flag(backbone) -> str:
    """The converter option of a :class:`~watson_jax.losses.deeploss.Backbone`, e.g. '--vgg16'."""
    return BACKBONE_FLAGS[backbone.name]


def converter_command(dest: str | os.PathLike) -> str:
    """The command fetching (or, offline, converting) the original weight files into ``dest``."""
    return (
        f"{CONVERT_COMMAND} --download --dest {dest}\n(offline: {CONVERT_COMMAND} --source <folder with the "
        f"original *_trial0.pth files, e.g. the original repository's src/loss/weights> --dest {dest})"
    )
