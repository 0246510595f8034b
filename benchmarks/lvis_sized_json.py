"""An LVIS-v1-train-sized annotation file, generated (for benchmarks that read training jsons): LVIS v1
train's key order (info, annotations, images, licenses, categories), 1,203 long-tailed categories with
image_count / instance_count / frequency / name / synonyms / def, 100,000 images and 1.27M annotations
with one or two 20-40 point polygons and a bbox each (~1 GB); ``scale`` scales images and annotations."""
import json

NUM_CATEGORIES, NUM_IMAGES, NUM_ANNOTATIONS = 1203, 100_000, 1_270_000
KEY_ORDER = ("info", "annotations", "images", "licenses", "categories")  # LVIS v1's


def generate(path, scale=1.0, seed=0):
    """Write an LVIS-v1-train-like json to ``path`` (streamed: the annotations are never all in memory).
    Returns a summary with the categories' counts."""
    import numpy as np

    rng = np.random.default_rng(seed)
    k = NUM_CATEGORIES
    n_img = max(1, round(NUM_IMAGES * scale))
    n_ann = max(1, round(NUM_ANNOTATIONS * scale))
    # long-tailed category of each annotation (every category at least once when there are enough)
    weights = 9000.0 ** (np.arange(k) / (k - 1))  # log-uniform expected counts: ~300 rare, ~300 common at scale 1
    rng.shuffle(weights)
    cat = rng.choice(k, size=n_ann, p=weights / weights.sum())
    if n_ann >= k:
        cat[rng.choice(n_ann, size=k, replace=False)] = np.arange(k)
    img = rng.integers(0, n_img, size=n_ann)
    instance_count = np.bincount(cat, minlength=k)
    image_count = np.bincount(np.unique(cat.astype(np.int64) * n_img + img) // n_img, minlength=k)

    words = ["aerosol", "air", "alarm", "album", "alcohol", "alligator", "almond", "ambulance", "amplifier",
             "anklet", "antenna", "apple", "apron", "aquarium", "armband", "armchair", "artichoke", "ashtray"]
    categories = []
    for j in range(k):
        a, b = words[j % len(words)], words[(j // len(words)) % len(words)]
        name = f"{a}_{b}_{j}"
        n = int(image_count[j])
        categories.append({
            "frequency": "r" if n <= 10 else ("c" if n <= 100 else "f"), "synset": f"{a}.n.{j:02d}",
            "synonyms": [name, f"{a} {b}", f"{b} {a}"],
            "def": f"a {a} used with a {b}, or a container holding {a}s (category {j})",
            "id": j + 1, "name": name, "image_count": n, "instance_count": int(instance_count[j]),
        })

    def polygons(x0, y0, w, h, m):
        """One polygon of m[i] points (flat [x, y, ...], 2 decimals) around each box, all drawn at once."""
        seg = np.repeat(np.arange(len(m)), m)
        t = rng.uniform(0, 2 * np.pi, len(seg))
        t = t[np.lexsort((t, seg))]  # points in angle order within each polygon
        r = rng.uniform(0.6, 1.0, len(seg))
        xs = x0[seg] + w[seg] / 2 * (1 + r * np.cos(t))
        ys = y0[seg] + h[seg] / 2 * (1 + r * np.sin(t))
        flat = np.round(np.stack([xs, ys], 1).ravel(), 2).tolist()
        ends = np.cumsum(2 * m).tolist()
        return [flat[e - 2 * n:e] for e, n in zip(ends, m.tolist())]

    with open(path, "w") as f:
        f.write('{"info": ' + json.dumps({
            "description": "LVIS-v1-train-sized synthetic annotations (benchmarks/bench_prior_build.py)",
            "url": "", "version": "1.0", "year": 2020, "contributor": "", "date_created": "2020-01-01"}))
        f.write(', "annotations": [')
        batch = 10_000
        for s in range(0, n_ann, batch):
            e = min(n_ann, s + batch)
            x0, y0 = rng.uniform(0, 340, e - s), rng.uniform(0, 340, e - s)
            w, h = rng.uniform(8, 300, e - s), rng.uniform(8, 300, e - s)
            npts = rng.integers(20, 41, e - s)
            first = polygons(x0, y0, w, h, npts)
            two = np.flatnonzero(rng.random(e - s) < 0.3)  # some objects are in two parts
            second = dict(zip(two.tolist(), polygons(x0[two] + w[two] / 3, y0[two] + h[two] / 3, w[two] / 3,
                                                       h[two] / 3, 60 - npts[two])))
            boxes = np.round(np.stack([x0, y0, w, h], 1), 2).tolist()
            areas = np.round(w * h * 0.7, 2).tolist()
            cats, imgs = (cat[s:e] + 1).tolist(), (img[s:e] + 1).tolist()
            anns = [{"area": areas[i], "id": s + i + 1,
                     "segmentation": [first[i], second[i]] if i in second else [first[i]],
                     "image_id": imgs[i], "bbox": boxes[i], "category_id": cats[i]} for i in range(e - s)]
            f.write(("" if s == 0 else ", ") + json.dumps(anns)[1:-1])
        f.write('], "images": [')
        for s in range(0, n_img, batch):
            images = []
            for i in range(s, min(n_img, s + batch)):
                neg = rng.choice(k, 3, replace=False) + 1
                images.append({
                    "date_captured": "2013-11-14 16:28:13", "neg_category_ids": neg.tolist(), "id": i + 1,
                    "license": 3, "height": 480, "width": 640,
                    "flickr_url": f"http://farm4.staticflickr.com/3153/{i:012d}_ab12cd34ef_z.jpg",
                    "coco_url": f"http://images.cocodataset.org/train2017/{i + 1:012d}.jpg",
                    "not_exhaustive_category_ids": [int(neg[0])]})
            f.write(("" if s == 0 else ", ") + json.dumps(images)[1:-1])
        f.write('], "licenses": ' + json.dumps([
            {"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
             "name": "Attribution-NonCommercial-ShareAlike License"}]))
        f.write(', "categories": ' + json.dumps(categories) + "}")
    return {"num_categories": k, "num_images": n_img, "num_annotations": n_ann,
            "image_count": image_count.tolist(), "instance_count": instance_count.tolist()}


# ----------------------------------------------------------------------------------------- workers
