"""Fake LVIS detections made from ground truth, for parity tests and benchmarks (no model needed).

Per image: jittered copies of the ground-truth boxes and polygons (true positives and near
misses), then random false positives up to ``dets_per_image``, spread over the image's
categories, its ``neg_category_ids``, its ``not_exhaustive_category_ids`` and random other
categories (which LVIS's federated rules do not count). Scores are distinct random floats.
"""
import numpy as np

from balms_eval.reading import polygons_to_rle


def _box_polygon(x, y, bw, bh):
    # an octagon inscribed in the box, so mask IoU differs from box IoU
    dx, dy = bw * 0.3, bh * 0.3
    return [[x + dx, y, x + bw - dx, y, x + bw, y + dy, x + bw, y + bh - dy,
             x + bw - dx, y + bh, x + dx, y + bh, x, y + bh - dy, x, y + dy]]


def make_fake_lvis_detections(gt, *, seed=0, dets_per_image=300, copies_per_instance=2, masks=True,
                              skip_images=1):
    """LVIS-format results (list of dicts) for the LVIS-format ground-truth dict ``gt``.

    Args:
        dets_per_image: detections per image (before LVIS's 300 cap; use > 300 to exercise it).
        copies_per_instance: jittered detections per ground-truth instance.
        masks: also give each detection an RLE "segmentation".
        skip_images: the first this many images (by id) get no detections at all.
    """
    rng = np.random.default_rng(seed)
    cat_ids = np.array(sorted(c["id"] for c in gt["categories"]))
    anns_by_image = {}
    for a in gt["annotations"]:
        anns_by_image.setdefault(a["image_id"], []).append(a)
    results = []
    for img in sorted(gt["images"], key=lambda im: im["id"])[skip_images:]:
        h, w, img_id = img["height"], img["width"], img["id"]
        dets = []
        for a in anns_by_image.get(img_id, []):
            x, y, bw, bh = a["bbox"]
            for _ in range(copies_per_instance):
                s = rng.normal(1.0, 0.08, 2)
                t = rng.normal(0.0, 0.1, 2) * [bw, bh]
                box = [x + t[0], y + t[1], bw * s[0], bh * s[1]]
                polys = None
                if masks:
                    cx, cy = x + bw / 2, y + bh / 2
                    polys = []
                    for p in a["segmentation"] if isinstance(a["segmentation"], list) else _box_polygon(x, y, bw, bh):
                        p = np.asarray(p, dtype=np.float64).reshape(-1, 2)
                        p = (p - [cx, cy]) * s + [cx, cy] + t
                        polys.append(p.ravel().tolist())
                dets.append((box, polys, a["category_id"]))
        pools = [np.array(sorted({a["category_id"] for a in anns_by_image.get(img_id, [])}), dtype=np.int64),
                 np.array(img.get("neg_category_ids", []), dtype=np.int64),
                 np.array(img.get("not_exhaustive_category_ids", []), dtype=np.int64),
                 cat_ids]
        pools = [p for p in pools if len(p)]
        while len(dets) < dets_per_image:
            pool = pools[rng.integers(len(pools))]
            bw, bh = rng.uniform(4, w / 2), rng.uniform(4, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            box = [x, y, bw, bh]
            dets.append((box, _box_polygon(*box) if masks else None, int(pool[rng.integers(len(pool))])))
        scores = rng.random(len(dets))
        for (box, polys, cat), score in zip(dets[:dets_per_image], scores):
            r = {"image_id": img_id, "category_id": int(cat), "bbox": [float(v) for v in box], "score": float(score)}
            if masks:
                r["segmentation"] = polygons_to_rle(polys, h, w)
            results.append(r)
    return results
