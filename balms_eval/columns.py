"""Detections as columns: numpy arrays, and the masks' compressed RLE counts in one bytes buffer.

Every step after reading works on this form (checks, the federated / exhaustive filter, the
backends); ``LVISEvaluator`` keeps and gathers detections in it, and the results JSON is written
from it. 1.5 M detections with masks take ~0.6 GB here, against ~1.5 GB as Python dicts.
"""
import itertools
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

AREA_CHUNK = 200_000  # masks decoded per hotcoco call: bounds the temporary RLE dicts


@dataclass
class Masks:
    """N RLE masks: ``counts`` (bytes: every mask's compressed counts string, concatenated),
    ``start`` / ``length`` (int64: each mask's slice of ``counts``), ``size`` (int64 N x 2:
    [height, width]) and ``area`` (float64 pixel counts, None until :meth:`compute_area`).
    :meth:`take` shares ``counts`` with the original, so selecting copies no mask. ``source``: when
    read from a results list, its RLE dicts (by reference, not copied), which :meth:`rles` then
    returns instead of building new ones (what the backends are fed: faster, no extra memory)."""

    counts: bytes
    start: np.ndarray
    length: np.ndarray
    size: np.ndarray
    area: Optional[np.ndarray] = None
    source: Optional[list] = field(default=None, repr=False, compare=False)

    def __len__(self):
        return len(self.start)

    @classmethod
    def from_rles(cls, rles):
        """Masks from RLE dicts {"size": [h, w], "counts": str or bytes (compressed)}."""
        counts = [r["counts"] for r in rles]
        length = np.fromiter(map(len, counts), np.int64, len(counts))
        joined = "".join(counts).encode("ascii") if counts and isinstance(counts[0], str) else b"".join(counts)
        if len(joined) != length.sum():
            raise ValueError("RLE counts must be ASCII strings or bytes")
        size = np.fromiter(itertools.chain.from_iterable(r["size"] for r in rles), np.int64, 2 * len(counts))
        source = list(rles) if counts and isinstance(counts[0], str) else None
        return cls(joined, np.cumsum(length) - length, length, size.reshape(len(counts), 2), source=source)

    @classmethod
    def concat(cls, parts):
        parts = list(parts)
        offsets = np.cumsum([0] + [len(p.counts) for p in parts[:-1]])
        areas = [p.area for p in parts]
        return cls(
            b"".join(p.counts for p in parts),
            np.concatenate([p.start + o for p, o in zip(parts, offsets)]) if parts else np.zeros(0, np.int64),
            np.concatenate([p.length for p in parts]) if parts else np.zeros(0, np.int64),
            np.concatenate([p.size for p in parts]) if parts else np.zeros((0, 2), np.int64),
            None if any(a is None for a in areas) or not parts else np.concatenate(areas),
        )

    def take(self, index):
        return Masks(self.counts, self.start[index], self.length[index], self.size[index],
                     None if self.area is None else self.area[index],
                     None if self.source is None else list(map(self.source.__getitem__, index.tolist())))

    def rles(self, begin=0, end=None):
        """RLE dicts of masks ``begin:end`` with str counts: the results-file form, which hotcoco and
        pycocotools also take (and which is built faster than bytes)."""
        end = len(self) if end is None else end
        if self.source is not None:
            return self.source[begin:end]
        starts, stops = self.start[begin:end].tolist(), (self.start[begin:end] + self.length[begin:end]).tolist()
        shared = {}  # one [h, w] list per image size, shared by its masks (read only)
        sizes = [shared.setdefault(hw, list(hw)) for hw in zip(*self.size[begin:end].T.tolist())]
        buf = memoryview(self.counts)  # (a ColumnsBuilder's bytearray is never copied whole)
        return [{"size": s, "counts": str(buf[a:b], "ascii")} for s, a, b in zip(sizes, starts, stops)]

    def compute_area(self):
        """Fill ``area`` by decoding every mask (hotcoco, in chunks); ValueError for invalid counts."""
        if self.area is None:
            from hotcoco import mask as hc_mask

            self.area = np.zeros(len(self))
            for b in range(0, len(self), AREA_CHUNK):
                rles = self.rles(b, b + AREA_CHUNK)
                self.area[b:b + len(rles)] = np.asarray(hc_mask.area(rles), np.float64).reshape(len(rles))
        return self.area


@dataclass
class ResultColumns:
    """N detections: ``image_id``, ``category_id`` (int64), ``score`` (float64), ``bbox``
    (float64 N x 4, [x, y, w, h]; None when not read) and ``masks`` (:class:`Masks`; None when
    not read)."""

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: Optional[np.ndarray] = None
    masks: Optional[Masks] = field(default=None)

    def __len__(self):
        return len(self.image_id)

    @classmethod
    def empty(cls, with_bbox=True, with_masks=True):
        z = np.zeros(0, np.int64)
        return cls(z, z, np.zeros(0), np.zeros((0, 4)) if with_bbox else None,
                   Masks(b"", z, z, np.zeros((0, 2), np.int64)) if with_masks else None)

    def take(self, index):
        """The detections at the integer positions ``index``, in that order."""
        return ResultColumns(self.image_id[index], self.category_id[index], self.score[index],
                             None if self.bbox is None else self.bbox[index],
                             None if self.masks is None else self.masks.take(index))

    @classmethod
    def concat(cls, parts):
        parts = [p for p in parts if p is not None]
        if not parts:
            return cls.empty()
        has_bbox, has_masks = all(p.bbox is not None for p in parts), all(p.masks is not None for p in parts)
        return cls(np.concatenate([p.image_id for p in parts]), np.concatenate([p.category_id for p in parts]),
                   np.concatenate([p.score for p in parts]),
                   np.concatenate([p.bbox for p in parts]) if has_bbox else None,
                   Masks.concat(p.masks for p in parts) if has_masks else None)

    def entries(self, begin=0, end=None, iou_type=None):
        """Detections ``begin:end`` as results-file dicts (image_id, category_id, bbox, score,
        segmentation with str counts); ``iou_type`` "bbox" / "segm": only that geometry."""
        end = len(self) if end is None else min(end, len(self))
        out = [{"image_id": i, "category_id": c, "score": s} for i, c, s in zip(
            self.image_id[begin:end].tolist(), self.category_id[begin:end].tolist(), self.score[begin:end].tolist())]
        if self.bbox is not None and iou_type != "segm":
            for r, b in zip(out, self.bbox[begin:end].tolist()):
                r["bbox"] = b
        if self.masks is not None and iou_type != "bbox":
            for r, m in zip(out, self.masks.rles(begin, end)):
                r["segmentation"] = m
        return out


class ColumnsBuilder:
    """Collects :class:`ResultColumns` part by part (``LVISEvaluator.process``, one image at a time):
    every part's mask counts are appended to one growing buffer, so :meth:`build` copies no mask
    (concatenating the parts would briefly hold every mask twice)."""

    def __init__(self):
        self._parts = []
        self._counts = bytearray()

    def __len__(self):
        return sum(len(p) for p in self._parts)

    def add(self, columns):
        masks = columns.masks
        if masks is not None:
            offset = len(self._counts)
            self._counts += masks.counts
            masks = Masks(b"", masks.start + offset, masks.length, masks.size, masks.area)
        self._parts.append(ResultColumns(columns.image_id, columns.category_id, columns.score, columns.bbox, masks))

    def build(self):
        """The parts as one :class:`ResultColumns` (empty if none); the builder is emptied."""
        if not self._parts:
            return ResultColumns.empty()
        parts, self._parts = self._parts, []
        columns = ResultColumns.concat(parts)  # every part's counts is b"": only the arrays are joined
        if columns.masks is not None:
            columns.masks.counts, self._counts = self._counts, bytearray()
        return columns
