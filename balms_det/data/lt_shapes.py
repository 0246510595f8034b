"""lt_shapes: a synthetic, long-tailed instance-segmentation dataset in LVIS format.

Classes are colour x shape (8 x 5 = 40 by default), e.g. ``red_circle``. Training images follow a
geometric (Zipf-like) long tail over classes: class k appears in about
``max_images * (min_images / max_images) ** (k / (K - 1))`` training images, ranks shuffled by the
seed. Frequency groups follow LVIS's rule on the *train* split (r: 1-10 training images,
c: 11-100, f: > 100). The val split is class-balanced (every class, rare ones included, in
``val_images_per_class`` images) so that APr is measurable.

Images contain several instances with partial occlusion (each instance keeps at least
``min_visible`` of its area, and no occluder punches a hole into it); the annotated mask is the
visible part, as polygons. Both splits carry LVIS's federated fields: ``neg_category_ids`` (a
random subset of the absent classes, verified absent) and ``not_exhaustive_category_ids``
(classes of which one instance was deliberately left unannotated).

Everything is deterministic given the arguments (the seed included); generation takes seconds.
"""
import hashlib
import json
import logging
import os
import tempfile

import cv2
import numpy as np

logger = logging.getLogger(__name__)

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "magenta": (210, 60, 210),
    "cyan": (40, 210, 220),
    "orange": (245, 140, 30),
    "white": (235, 235, 235),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
FORMAT_VERSION = 1

DEFAULTS = dict(
    seed=0,
    num_train_images=600,
    num_val_images=100,
    image_size=160,
    max_images=300,  # training images of the most frequent class
    min_images=2,  # training images of the rarest class
    val_images_per_class=10,
    min_size=14,  # object size range, pixels (circumscribed-circle diameter)
    max_size=44,
    second_instance_prob=0.2,  # chance that a class present in an image has 2 instances
    not_exhaustive_prob=0.1,  # chance that one of 2 instances is left unannotated
    neg_fraction=0.5,  # fraction of the absent classes listed in neg_category_ids
    min_visible=0.5,  # fraction of an instance's area that occlusion must leave visible
)


def class_names():
    """The category names, in category-id order (id = index + 1)."""
    return [f"{c}_{s}" for s in SHAPES for c in COLORS]


def frequency_group(image_count):
    """LVIS's rule: r = 1-10 training images, c = 11-100, f = more than 100."""
    if image_count <= 10:
        return "r"
    return "c" if image_count <= 100 else "f"


def params_hash(params):
    blob = json.dumps({"v": FORMAT_VERSION, **params}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def generate_lt_shapes(root, **kwargs):
    """Write ``root/lt_shapes_{train,val}.json`` and ``root/{train,val}/*.png`` (if not there yet).

    Keyword arguments override :data:`DEFAULTS`. Safe to call concurrently from several processes
    (a file lock serialises generation; files are written atomically). Returns a dict with keys
    ``train_json``, ``val_json``, ``train_images``, ``val_images`` (image roots as detectron2's
    ``load_lvis_json`` expects them, i.e. ending with a path separator).
    """
    unknown = set(kwargs) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"generate_lt_shapes: unknown argument(s) {sorted(unknown)}; "
                        f"known: {sorted(DEFAULTS)}")
    params = {**DEFAULTS, **kwargs}
    _check_params(params)
    os.makedirs(root, exist_ok=True)
    paths = {
        "train_json": os.path.join(root, "lt_shapes_train.json"),
        "val_json": os.path.join(root, "lt_shapes_val.json"),
        "train_images": os.path.join(root, ""),
        "val_images": os.path.join(root, ""),
    }
    stamp = os.path.join(root, "COMPLETE")
    digest = params_hash(params)
    import fcntl

    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(stamp):
            with open(stamp) as f:
                have = f.read().strip()
            if have == digest:
                return paths
            raise RuntimeError(
                f"{root} holds lt_shapes generated with other parameters (hash {have}, wanted "
                f"{digest}); delete it or choose another root"
            )
        rng = np.random.default_rng(params["seed"])
        train_counts = _train_image_counts(params, rng)
        train = _make_split("train", params, rng, _train_plan(params, train_counts, rng), root)
        val = _make_split("val", params, rng, _val_plan(params, rng), root, train_stats=train)
        _write_json(paths["train_json"], train)
        _write_json(paths["val_json"], val)
        with open(stamp, "w") as f:
            f.write(digest)
    logger.info("Generated lt_shapes in %s (%d train / %d val images)", root,
                len(train["images"]), len(val["images"]))
    return paths


def _check_params(p):
    if not 1 <= p["min_images"] <= p["max_images"] <= p["num_train_images"]:
        raise ValueError("need 1 <= min_images <= max_images <= num_train_images, got "
                         f"{p['min_images']}, {p['max_images']}, {p['num_train_images']}")
    if p["val_images_per_class"] > p["num_val_images"]:
        raise ValueError("val_images_per_class must be <= num_val_images")
    if not 4 <= p["min_size"] <= p["max_size"] <= p["image_size"] // 2:
        raise ValueError("need 4 <= min_size <= max_size <= image_size / 2")


def _train_image_counts(p, rng):
    k = len(class_names())
    ranks = rng.permutation(k)  # class id -> frequency rank
    geo = p["max_images"] * (p["min_images"] / p["max_images"]) ** (np.arange(k) / max(k - 1, 1))
    return np.round(geo).astype(int)[ranks]


def _train_plan(p, counts, rng):
    """For each image, the list of class indices present (each class in counts[c] images)."""
    plan = [[] for _ in range(p["num_train_images"])]
    for c, n in enumerate(counts):
        for i in rng.choice(p["num_train_images"], size=n, replace=False):
            plan[i].append(c)
    return plan


def _val_plan(p, rng):
    plan = [[] for _ in range(p["num_val_images"])]
    for c in range(len(class_names())):
        for i in rng.choice(p["num_val_images"], size=p["val_images_per_class"], replace=False):
            plan[i].append(c)
    return plan


def _shape_mask(shape, size, angle, cx, cy, hw):
    h, w = hw
    m = np.zeros((h, w), np.uint8)
    r = size / 2.0
    if shape == "circle":
        cv2.circle(m, (int(round(cx)), int(round(cy))), int(round(r)), 1, -1)
        return m.astype(bool)
    if shape == "square":
        pts = [(r * np.cos(t), r * np.sin(t)) for t in np.pi / 4 + np.arange(4) * np.pi / 2]
    elif shape == "triangle":
        pts = [(r * np.cos(t), r * np.sin(t)) for t in -np.pi / 2 + np.arange(3) * 2 * np.pi / 3]
    elif shape == "star":
        pts = [((r if i % 2 == 0 else 0.45 * r) * np.cos(t), (r if i % 2 == 0 else 0.45 * r) * np.sin(t))
               for i, t in enumerate(-np.pi / 2 + np.arange(10) * np.pi / 5)]
    elif shape == "cross":
        a, b = r, 0.33 * r
        pts = [(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a),
               (-b, -a), (-b, -b), (-a, -b), (-a, b), (-b, b), (-b, a)]
    else:
        raise ValueError(shape)
    c, s = np.cos(angle), np.sin(angle)
    poly = np.array([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts])
    cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return m.astype(bool)


def _has_hole(mask):
    _, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())


def _place(objects, shape, p, rng):
    """Add one object so that every earlier object keeps >= min_visible of its area and no hole.
    Returns the new object's full mask, or None if it could not be placed."""
    hw = (p["image_size"], p["image_size"])
    size = rng.uniform(p["min_size"], p["max_size"])
    for _ in range(4):
        for _ in range(25):
            r = size / 2
            cx, cy = rng.uniform(r + 1, hw[1] - r - 1), rng.uniform(r + 1, hw[0] - r - 1)
            m = _shape_mask(shape, size, rng.uniform(0, 2 * np.pi), cx, cy, hw)
            if m.sum() < 16:
                continue
            ok = True
            for o in objects:
                vis = o["visible"] & ~m
                if vis.sum() < p["min_visible"] * o["area_full"] or (
                        (o["visible"] & m).any() and _has_hole(vis)):
                    ok = False
                    break
            if ok:
                return m
        size *= 0.8
        if size < p["min_size"] * 0.6:
            break
    return None


def _render_image(p, rng, classes):
    s = p["image_size"]
    base = rng.uniform(25, 80, size=3)
    yy, xx = np.mgrid[0:s, 0:s] / s
    grad = (rng.uniform(-25, 25, size=3)[None, None] * xx[..., None]
            + rng.uniform(-25, 25, size=3)[None, None] * yy[..., None])
    img = base[None, None] + grad + rng.normal(0, 6, size=(s, s, 3))
    names = class_names()
    objects = []
    for c in classes:
        n = 2 if rng.random() < p["second_instance_prob"] else 1
        for _ in range(n):
            shape = names[c].split("_")[1]
            m = _place(objects, shape, p, rng)
            if m is None:
                continue
            for o in objects:
                o["visible"] &= ~m
            color = np.clip(np.array(COLORS[names[c].split("_")[0]]) + rng.normal(0, 10, 3), 0, 255)
            img[m] = color + rng.normal(0, 4, size=(int(m.sum()), 3))
            objects.append({"cls": c, "visible": m.copy(), "area_full": float(m.sum())})
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, objects


def _polygons(mask):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for cnt in contours:
        if len(cnt) >= 3:
            polys.append([float(v) for v in cnt.reshape(-1)])
    return polys


def _make_split(split, p, rng, plan, root, train_stats=None):
    from pycocotools import mask as mask_util

    names = class_names()
    k = len(names)
    s = p["image_size"]
    os.makedirs(os.path.join(root, split), exist_ok=True)
    id_offset = 0 if split == "train" else 1_000_000
    images, annotations = [], []
    for i, classes in enumerate(plan):
        img_id = id_offset + i + 1
        img, objects = _render_image(p, rng, classes)
        file_name = f"{img_id:012d}.png"
        cv2.imwrite(os.path.join(root, split, file_name), img[:, :, ::-1])
        by_class = {}
        for o in objects:
            polys = _polygons(o["visible"])
            if polys:
                by_class.setdefault(o["cls"], []).append(polys)
        not_exhaustive = []
        for c, insts in sorted(by_class.items()):
            if len(insts) > 1 and rng.random() < p["not_exhaustive_prob"]:
                insts.pop(int(rng.integers(len(insts))))
                not_exhaustive.append(c + 1)
            for polys in insts:
                rle = mask_util.merge(mask_util.frPyObjects(polys, s, s))
                x, y, w, h = mask_util.toBbox(rle).tolist()
                annotations.append({
                    "id": len(annotations) + 1, "image_id": img_id, "category_id": c + 1,
                    "segmentation": polys, "area": float(mask_util.area(rle)),
                    "bbox": [x, y, w, h],
                })
        absent = np.array(sorted(set(range(k)) - set(by_class)))
        n_neg = int(round(p["neg_fraction"] * len(absent)))
        neg = sorted(int(c) + 1 for c in rng.choice(absent, size=n_neg, replace=False)) if n_neg else []
        images.append({
            "id": img_id, "width": s, "height": s, "file_name": file_name,
            "coco_url": f"http://lt-shapes.invalid/{split}/{file_name}",
            "neg_category_ids": neg, "not_exhaustive_category_ids": not_exhaustive,
        })
    if train_stats is not None:  # as in LVIS releases, val lists the train split's categories
        categories = train_stats["categories"]
    else:
        image_count = np.zeros(k, int)
        instance_count = np.zeros(k, int)
        for cid, imgs in _group(annotations).items():
            image_count[cid - 1] = len(imgs)
            instance_count[cid - 1] = sum(imgs.values())
        categories = [{
            "id": c + 1, "name": names[c], "synonyms": [names[c], names[c].replace("_", " ")],
            "def": "a {} {}".format(*names[c].split("_")),
            "synset": f"{names[c]}.n.01",
            "frequency": frequency_group(int(image_count[c])),
            "image_count": int(image_count[c]), "instance_count": int(instance_count[c]),
        } for c in range(k)]
    return {
        "info": {"description": f"lt_shapes {split} (synthetic, long-tailed)", "version": str(FORMAT_VERSION),
                 "params": p},
        "licenses": [],
        "images": images, "annotations": annotations, "categories": categories,
    }


def _group(annotations):
    out = {}
    for a in annotations:
        d = out.setdefault(a["category_id"], {})
        d[a["image_id"]] = d.get(a["image_id"], 0) + 1
    return out


def _write_json(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
