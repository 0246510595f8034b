"""Registration of lt_shapes with detectron2, the way the built-in LVIS sets are registered.

``lt_shapes_train`` / ``lt_shapes_val`` live in ``$DETECTRON2_DATASETS/lt_shapes`` (default
``./datasets/lt_shapes``) and are generated there on first use: by ``DatasetCatalog.get`` or by
reading a metadata field that needs the files (``json_file``, ``image_root``,
``class_image_count``). ``thing_classes`` and ``evaluator_type`` are known without generating.
"""
import json
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.data.datasets.lvis import load_lvis_json

from .lt_shapes import class_names, generate_lt_shapes

_LAZY_KEYS = ("json_file", "image_root", "class_image_count")


class _LazyLTShapesMetadata(Metadata):
    """Metadata whose file-backed fields are filled (generating the dataset) on first access."""

    def __getattr__(self, key):
        if key in _LAZY_KEYS and not self.__dict__.get("_materializing", False):
            self._materialize()
            return getattr(self, key)
        return super().__getattr__(key)

    def _materialize(self):
        self.__dict__["_materializing"] = True
        try:
            paths = generate_lt_shapes(self._root, **self._gen_kwargs)
            json_file = paths[f"{self._split}_json"]
            with open(json_file) as f:
                cats = json.load(f)["categories"]
            self.set(
                json_file=json_file,
                image_root=paths[f"{self._split}_images"],
                class_image_count=[{"id": c["id"], "image_count": c["image_count"]} for c in cats],
            )
        finally:
            self.__dict__["_materializing"] = False


def register_lt_shapes(name, split, root, **gen_kwargs):
    """Register an lt_shapes split (``"train"`` or ``"val"``) generated into ``root`` with
    :func:`generate_lt_shapes` keyword arguments ``gen_kwargs`` (same root => same arguments)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    meta = _LazyLTShapesMetadata(name=name)
    meta.__dict__.update(_root=root, _split=split, _gen_kwargs=dict(gen_kwargs))
    meta.set(thing_classes=class_names(), evaluator_type="lvis")
    DatasetCatalog.register(name, lambda: load_lvis_json(meta.json_file, meta.image_root))
    MetadataCatalog[name] = meta
    return meta


def _root():
    return os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "lt_shapes")


def register_all_lt_shapes(root=None):
    root = root or _root()
    for split in ("train", "val"):
        register_lt_shapes(f"lt_shapes_{split}", split, root)


register_all_lt_shapes()
