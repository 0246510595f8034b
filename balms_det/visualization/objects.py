"""What is drawn on one image: detections or ground truth as arrays, from a model's ``Instances``, a
results file's entries or a detectron2 dataset dict's annotations (no torch import).

Shape shorthand: N objects; H, W the image's height and width in pixels.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["Objects", "decode_segmentation"]

_XYXY_ABS, _XYWH_ABS = 0, 1  # detectron2's BoxMode values (BoxMode imports torch)


@dataclass
class Objects:
    """Detections (``scores`` set) or ground truth (``scores`` None) of one image.

    Attributes:
        boxes: (N, 4) float [x0, y0, x1, y1] in image pixels.
        classes: (N,) int, contiguous class ids (0..K-1, as the model predicts them).
        scores: (N,) float, or None for ground truth.
        masks: (N, H, W) bool, or None (boxes only).
    """

    boxes: np.ndarray
    classes: np.ndarray
    scores: Optional[np.ndarray] = None
    masks: Optional[np.ndarray] = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        self.classes = np.asarray(self.classes, np.int64).reshape(-1)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, np.float64).reshape(-1)
        if self.masks is not None:
            self.masks = np.asarray(self.masks, bool)
        n = len(self.boxes)
        if len(self.classes) != n or (self.scores is not None and len(self.scores) != n) or (
                self.masks is not None and len(self.masks) != n):
            raise ValueError(f"Objects: {n} boxes, {len(self.classes)} classes, "
                             f"{None if self.scores is None else len(self.scores)} scores, "
                             f"{None if self.masks is None else len(self.masks)} masks")

    def __len__(self):
        return len(self.boxes)

    def __getitem__(self, keep):
        """The objects selected by ``keep`` (a boolean mask or indices)."""
        return Objects(self.boxes[keep], self.classes[keep], None if self.scores is None else self.scores[keep],
                       None if self.masks is None else self.masks[keep])

    def above(self, score_thresh):
        """The detections scoring at least ``score_thresh``, highest first (ground truth: unchanged)."""
        if self.scores is None:
            return self
        keep = np.flatnonzero(self.scores >= score_thresh)
        return self[keep[np.argsort(-self.scores[keep], kind="stable")]]

    @classmethod
    def from_instances(cls, instances, score_thresh=0.0):
        """A model's predicted detectron2 ``Instances`` (any device) scoring at least ``score_thresh``."""
        keep = (instances.scores >= score_thresh).nonzero().flatten()
        inst = instances[keep].to("cpu")
        masks = inst.pred_masks.numpy() if inst.has("pred_masks") else None
        return cls(inst.pred_boxes.tensor.numpy(), inst.pred_classes.numpy(), inst.scores.numpy(), masks).above(
            score_thresh)

    @classmethod
    def from_results(cls, entries, to_contiguous, height, width, score_thresh=0.0):
        """Entries of a results file (COCO/LVIS format: "category_id" as in the annotation file, "bbox"
        [x, y, w, h], "score", optionally "segmentation" as an RLE or polygons) of one image of
        ``height`` x ``width`` pixels scoring at least ``score_thresh``. ``to_contiguous``: {category id:
        contiguous class id}; an unknown category id raises ValueError."""
        entries = [e for e in entries if float(e["score"]) >= score_thresh]
        unknown = sorted({e["category_id"] for e in entries if e["category_id"] not in to_contiguous})
        if unknown:
            raise ValueError(f"Detections of category ids {unknown[:10]} that the dataset does not have "
                             f"(it has {len(to_contiguous)} categories)")
        boxes = np.array([e["bbox"] for e in entries], np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        masks = None
        if entries and all("segmentation" in e for e in entries):
            masks = np.stack([decode_segmentation(e["segmentation"], height, width) for e in entries])
        return cls(boxes, [to_contiguous[e["category_id"]] for e in entries], [e["score"] for e in entries],
                   masks).above(score_thresh)

    @classmethod
    def from_annotations(cls, annotations, height, width):
        """The ground truth of a detectron2 dataset dict ("annotations": contiguous "category_id", "bbox"
        with "bbox_mode", optional "segmentation"); crowd regions left out."""
        annotations = [a for a in annotations if not a.get("iscrowd", 0)]
        boxes = []
        for a in annotations:
            x, y, w, h = (float(v) for v in a["bbox"])
            mode = int(a.get("bbox_mode", _XYWH_ABS))
            if mode == _XYWH_ABS:
                boxes.append([x, y, x + w, y + h])
            elif mode == _XYXY_ABS:
                boxes.append([x, y, w, h])
            else:
                raise ValueError(f"Ground truth with bbox_mode {mode}: only XYXY_ABS (0) and XYWH_ABS (1) are drawn")
        masks = None
        if annotations and all(a.get("segmentation") for a in annotations):
            masks = np.stack([decode_segmentation(a["segmentation"], height, width) for a in annotations])
        return cls(np.array(boxes).reshape(-1, 4), [a["category_id"] for a in annotations], None, masks)


def decode_segmentation(segmentation, height, width):
    """(H, W) bool mask of a COCO segmentation: polygons [[x1, y1, ...], ...], an uncompressed RLE
    (counts a list) or a compressed one (counts a str or bytes)."""
    from pycocotools import mask as mask_util

    if isinstance(segmentation, dict):
        rle = segmentation
        if isinstance(rle["counts"], list):
            rle = mask_util.frPyObjects(rle, *rle["size"])
        elif isinstance(rle["counts"], str):
            rle = dict(rle, counts=rle["counts"].encode("ascii"))
        mask = mask_util.decode(rle).astype(bool)
        if mask.shape != (height, width):
            raise ValueError(f"A mask of {mask.shape[0]}x{mask.shape[1]} pixels on an image of {height}x{width}")
        return mask
    polygons = [p for p in segmentation if len(p) >= 6]
    if not polygons:
        return np.zeros((height, width), bool)
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygons, height, width))).astype(bool)
