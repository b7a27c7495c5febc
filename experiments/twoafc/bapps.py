"""A tensorflow-datasets builder ``bapps``: BAPPS 2AFC triplets prepared as array_record, without TensorFlow.

One config per category (``traditional``, ``cnn``, ``mix``, ``superres``, ``deblur``, ``color``,
``frameinterp``); its splits are the ones of the official data holding that category (``train`` and/or
``val``). ``download_and_prepare`` reads the extracted tarballs from the manual folder (the ``2afc/``
folder holding ``train/`` and ``val/``), decodes and resizes each image exactly as :mod:`.data` does (PIL
bilinear, 64×64) and stores it as PNG bytes; :func:`prepared_source` reads a split back with
``as_data_source`` (random access, no TensorFlow).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from . import data

ALL_CATEGORIES = ("traditional", "cnn", "mix", "superres", "deblur", "color", "frameinterp")


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


class Bapps(tfds.core.GeneratorBasedBuilder):
    """BAPPS 2AFC (Zhang et al., CVPR 2018), 64×64, one config per category."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "PIL bilinear 64×64, judges as the fraction preferring p1."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download twoafc_train.tar.gz and twoafc_val.tar.gz of LPIPS's BAPPS "
        "(https://github.com/richzhang/PerceptualSimilarity, scripts/download_dataset.sh), extract them and "
        "pass the resulting 2afc/ folder (holding train/ and val/) as the manual folder."
    )
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=c) for c in ALL_CATEGORIES]

    def _info(self) -> tfds.core.DatasetInfo:
        image = tfds.features.Image(shape=(data.SIZE, data.SIZE, 3), dtype=np.uint8, encoding_format="png")
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "ref": image,
                    "p0": image,
                    "p1": image,
                    "judge": tfds.features.Scalar(np.float32),
                    "name": tfds.features.Text(),
                }
            ),
            homepage="https://github.com/richzhang/PerceptualSimilarity",
            disable_shuffling=True,  # file order, as the reference evaluates
        )

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        category = self.builder_config.name
        splits = {
            s: self._generate_examples(root, s) for s in ("train", "val") if (root / s / category).is_dir()
        }
        if not splits:
            raise data.DataError(f"no {root}/train/{category} or {root}/val/{category}: not the BAPPS layout")
        return splits

    def _generate_examples(self, root: Path, split: str):
        category = self.builder_config.name
        folder = root / split / category
        for name in data.category_names(root, split, category):
            yield (
                name,
                {
                    **{k: _png(data.read_image(folder / k / f"{name}.png")) for k in data.IMAGES},
                    "judge": data.read_judge(folder / "judge" / f"{name}.npy"),
                    "name": name,
                },
            )


def prepare(root: str | Path, cache: str | Path, categories: tuple[str, ...]) -> None:
    """Prepare (once) the array_record files of the given categories under ``cache``."""
    for category in categories:
        builder = Bapps(config=category, data_dir=str(cache), file_format="array_record")
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(root)),
        )


class PreparedSource:
    """The prepared categories of one split, concatenated; ``[i]`` as :class:`.data.FolderSource`."""

    def __init__(self, cache: str | Path, split: str, categories: tuple[str, ...]):
        self.split, self.categories = split, tuple(categories)
        self.sources = [
            Bapps(config=c, data_dir=str(cache), file_format="array_record").as_data_source(split)
            for c in self.categories
        ]
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> dict:
        c = int(np.searchsorted(self.offsets, int(i), side="right") - 1)
        row = self.sources[c][int(i) - int(self.offsets[c])]
        out = {k: np.asarray(row[k], np.uint8) for k in data.IMAGES}
        out["judge"] = np.float32(row["judge"])
        out["category"] = np.int32(c)
        return out

    def read(self, indices: np.ndarray) -> dict:
        rows = [self[i] for i in indices]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}
