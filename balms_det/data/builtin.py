"""Registration of lt_shapes with detectron2, the way the built-in LVIS sets are registered.

``lt_shapes_train`` / ``lt_shapes_val`` live in ``$DETECTRON2_DATASETS/lt_shapes`` (default
``./datasets/lt_shapes``; ``lt_shapes_mini_{train,val}``, a small copy for smoke tests, in
``.../lt_shapes_mini``) and are generated there on first use: by ``DatasetCatalog.get`` or by
reading a metadata field that needs the files (``json_file``, ``image_root``,
``class_image_count``). ``thing_classes`` and ``evaluator_type`` are known without generating.
"""
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata

from .lt_shapes import class_names, generate_lt_shapes
from .lvis_style import load_lvis_style_json, lvis_style_metadata

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
            meta = lvis_style_metadata(paths[f"{self._split}_json"], paths[f"{self._split}_images"])
            self.set(**{k: meta[k] for k in _LAZY_KEYS})
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
    DatasetCatalog.register(name, lambda: load_lvis_style_json(meta.json_file, meta.image_root))
    MetadataCatalog[name] = meta
    return meta


# name -> generate_lt_shapes arguments. "lt_shapes_mini" is a small copy for smoke tests.
_BUILTIN = {
    "lt_shapes": {},
    "lt_shapes_mini": dict(num_train_images=80, num_val_images=20, max_images=40, min_images=1,
                           val_images_per_class=3),
}


def register_all_lt_shapes(root=None):
    root = root or os.getenv("DETECTRON2_DATASETS", "datasets")
    for name, kwargs in _BUILTIN.items():
        for split in ("train", "val"):
            register_lt_shapes(f"{name}_{split}", split, os.path.join(root, name), **kwargs)


register_all_lt_shapes()
