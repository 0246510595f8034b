"""balms_eval.json_categories: the top-level ``categories`` / number of ``images`` of a JSON annotation
file, read without loading the file, equal to ``json.load``'s, with one-line errors."""
import json
import os
import subprocess
import sys
import tracemalloc

import pytest

from balms_eval import json_categories as jc
from balms_eval.json_categories import (
    MalformedJSONError,
    MissingKeyError,
    count_json_images,
    read_json_categories,
)

TRICK = '"categories": [{"id": 99}], '  # as a JSON string: \"categories\": [{\"id\": 99}], (escaped quotes)
TRICK_KEY = 'file "categories'  # as a JSON key: "file \"categories": the key token's bytes, its quote escaped
TRICK_KEY3 = 'file \\"categories'  # "file \\\"categories": three backslashes before the quote


def _expected(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data["categories"], len(data["images"])


def _check_equal(path):
    cats, n = _expected(path)
    assert read_json_categories(path, cache=False) == cats
    assert count_json_images(path, cache=False) == n
    return cats, n


def _dataset(num_images=6, num_annotations=9, extra_def=""):
    cats = [{"id": j, "name": f"c{j}", "def": f"class {j} é{extra_def}", "synonyms": [f"c{j}"],
             "image_count": j, "instance_count": 2 * j, "frequency": "r"} for j in (3, 1, 2)]
    return {
        "info": {"description": "test", "categories": "not the key: a nested one"},
        "annotations": [{"id": i + 1, "image_id": i % num_images + 1, "category_id": i % 3 + 1,
                         "segmentation": [[1.5, 2.0, 30.25, 4.0, 5.0, 60.0]], "bbox": [1.5, 2.0, 28.75, 58.0],
                         "area": 100.5} for i in range(num_annotations)],
        "images": [{"id": i + 1, "file_name": f"{i}.jpg", "height": 4, "width": 5} for i in range(num_images)],
        "licenses": [],
        "categories": cats,
    }


def _write(path, data, order=None, **dump_kw):
    order = order or list(data)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({k: data[k] for k in order}, **dump_kw))
    return str(path)


def test_equals_json_load_on_lt_shapes(lt_shapes):
    for split in ("train_json", "val_json"):
        cats, n = _check_equal(lt_shapes[split])
        assert len(cats) == 40 and n > 0


def test_equals_json_load_on_real_lvis(lvis_json):
    cats, n = _check_equal(lvis_json)  # v0.5 order: categories first, images last
    assert len(cats) == 1230 and n == 100


@pytest.mark.parametrize("order", [
    ["info", "annotations", "images", "licenses", "categories"],  # LVIS v1
    ["info", "licenses", "images", "annotations", "categories"],  # COCO
    ["info", "images", "categories", "licenses", "annotations"],  # detectron2's convert_to_coco_json
    ["categories", "annotations", "info", "licenses", "images"],  # LVIS v0.5
])
@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_key_orders_and_pretty_printed(tmp_path, order, indent):
    path = _write(tmp_path / "a.json", _dataset(), order, indent=indent, ensure_ascii=False)
    cats, n = _check_equal(path)
    assert [c["id"] for c in cats] == [3, 1, 2] and n == 6


def test_escaped_key_text_in_strings_before_the_real_key(tmp_path):
    """``\\"categories\\": [`` inside string values (image file names, a category's def, the info), keys
    whose JSON text ends with the key token's bytes ``"categories"`` but whose quote is escaped (one or
    three backslashes), and a nested "categories" key, all before the real key: none is taken for it."""
    data = _dataset(extra_def=" " + TRICK)
    for img in data["images"]:
        img["file_name"] = TRICK + img["file_name"]
        img[TRICK_KEY] = [{"id": 99}]
    data["info"]["note"] = TRICK
    data["info"][TRICK_KEY3] = [{"id": 98}]
    data["images"][0]["file_name"] = "ends with a backslash \\"  # an escaped backslash before a real quote
    path = _write(tmp_path / "a.json", data)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text.count('\\"categories\\": [') == 9 and text.count('\\"categories": [{"id": 9') == 7
    assert text.count('\\\\\\"categories": [{"id": 98}]') == 1
    cats, _ = _check_equal(path)
    assert [c["id"] for c in cats] == [3, 1, 2]


def test_escaped_key_text_after_the_top_level_key(tmp_path):
    """The same texts in members after the real key: the last match of the key token's bytes in the
    file is an escaped one, and the search goes on before it."""
    data = _dataset()
    data["zzz"] = {"file_name": TRICK, TRICK_KEY: [{"id": 99}], "x": [{TRICK_KEY3: [{"id": 98}]}]}
    path = _write(tmp_path / "b.json", data)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text.rindex('"categories": [{"id": 9') > text.index('"categories": [{"id": 3')
    cats, _ = _check_equal(path)
    assert [c["id"] for c in cats] == [3, 1, 2]
    # the root object's last member: without the backslash count, its key would read as "categories"
    # followed by a value and the root's closing brace, i.e. as the top-level key
    data[TRICK_KEY] = [{"id": 99}]
    path = _write(tmp_path / "c.json", data)
    with open(path, encoding="utf-8") as f:
        assert f.read().endswith('"file \\"categories": [{"id": 99}]}')
    cats, _ = _check_equal(path)
    assert [c["id"] for c in cats] == [3, 1, 2]


def test_a_nested_key_after_the_top_level_one(tmp_path):
    """The last "categories" key of the file is a nested one: the top-level one is still found (by
    walking the root object from the start) and the nested one is not returned."""
    data = _dataset()
    data["extra"] = {"categories": [{"id": 99}], "images": [1, 2, 3, 4, 5, 6, 7]}
    cats, n = _check_equal(_write(tmp_path / "a.json", data))
    assert [c["id"] for c in cats] == [3, 1, 2] and n == 6


def test_missing_file_and_missing_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: .*nope.json"):
        read_json_categories(str(tmp_path / "nope.json"))
    data = _dataset()
    del data["categories"]
    data["info"]["text"] = TRICK
    path = _write(tmp_path / "nocats.json", data)
    assert count_json_images(path) == 6
    with pytest.raises(MissingKeyError) as e:
        read_json_categories(path)
    msg = str(e.value)
    assert "no top-level 'categories' key" in msg and "nocats.json" in msg and "\n" not in msg
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    assert not msg.startswith("'")  # not quoted as a plain KeyError's message is
    del data["images"]
    with pytest.raises(MissingKeyError, match="no top-level 'images' key"):
        count_json_images(_write(tmp_path / "noimages.json", data))


@pytest.mark.parametrize("text, offset, why, images_read", [
    # a trailing comma / a missing comma in the categories: the images (before them) are read fine
    ('{"images": [], "categories": [{"id": 1,}]}', None, "Expecting property name", 0),
    ('{"images": [], "categories": [{"id": 1} {"id": 2}]}', None, "Expecting ',' delimiter", 0),
    # cut files, and a root object that is not closed: whatever is read
    ('{"images": [], "categories": [{"id": 1}, {"id": 2', None, "truncated", None),
    ('{"categories": [{"id": 1}], "images": [{"id": 1}, {"id"', None, "truncated", None),
    ('{"images": [], "categories": [{"id": 1}]', None, "truncated", None),
    ('[{"images": [], "categories": [{"id": 1}]}]', 0, "not an object", None),  # valid JSON, not an object
    ('  ', 0, "empty", None),
])
def test_malformed_json_is_a_one_line_error(tmp_path, text, offset, why, images_read):
    path = tmp_path / "bad.json"
    path.write_text(text)
    if offset is None:
        with pytest.raises(json.JSONDecodeError) as ref:
            json.loads(text)
        offset = ref.value.pos  # where json.loads finds the error
    with pytest.raises(MalformedJSONError) as e:
        read_json_categories(str(path), cache=False)
    msg = str(e.value)
    assert msg.startswith(f"Malformed JSON in {path} at byte {offset} (line 1): "), msg
    assert why in msg and "\n" not in msg and isinstance(e.value, ValueError)
    if images_read is None:
        with pytest.raises(MalformedJSONError, match=why):
            count_json_images(str(path), cache=False)
    else:  # only what is read is checked
        assert count_json_images(str(path), cache=False) == images_read


def test_malformed_on_a_later_line_names_the_line(tmp_path):
    data = _dataset()
    text = json.dumps(data, indent=1).replace('"frequency": "r"', '"frequency": r', 1)
    path = tmp_path / "bad.json"
    path.write_text(text)
    line = text[:text.index('"frequency": r')].count("\n") + 1
    with pytest.raises(MalformedJSONError, match=rf"\(line {line}\): Expecting value"):
        read_json_categories(str(path), cache=False)


def test_wrong_shapes_are_clear_errors(tmp_path):
    for fn, text, msg in (
            (count_json_images, '{"images": 3, "categories": [{"id": 1}]}', "'images' is not an array"),
            (read_json_categories, '{"categories": {"id": 1}}', "'categories' is not a list"),
            (read_json_categories, '{"categories": [{"name": "a"}]}', r"categories\[0\] is not an object with an 'id'")):
        path = tmp_path / "x.json"
        path.write_text(text)
        with pytest.raises(MalformedJSONError, match=msg):
            fn(str(path), cache=False)


def test_cache_reads_once_and_rereads_a_changed_file(tmp_path, monkeypatch):
    jc.clear_cache()
    path = _write(tmp_path / "a.json", _dataset())
    calls = []
    find = jc._find
    monkeypatch.setattr(jc, "_find", lambda path, key, count: calls.append((key, count)) or find(path, key, count))
    first = read_json_categories(path)
    first[0]["image_count"] = -1  # a caller's change does not reach the next caller
    assert read_json_categories(path)[0]["image_count"] == 3
    assert count_json_images(path) == count_json_images(path) == 6
    assert calls == [("categories", False), ("images", True)]
    data = _dataset(num_images=8)
    _write(path, data)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    assert count_json_images(path) == 8 and len(calls) == 3
    assert read_json_categories(path, cache=False) and len(calls) == 4  # cache=False always reads
    jc.clear_cache()


@pytest.fixture(scope="module")
def big_json(tmp_path_factory):
    """~12 MB: 20,000 annotations with 60-number polygons, then images and categories (LVIS v1 order),
    and a nested "categories" key at the very end, so that finding the top-level key means walking
    past the annotations."""
    data = _dataset(num_images=2000, num_annotations=0)
    seg = [[round(100 + 0.37 * i, 2) for i in range(60)]]
    data["annotations"] = [{"id": i + 1, "image_id": i % 2000 + 1, "category_id": i % 3 + 1, "segmentation": seg,
                            "bbox": [1.5, 2.0, 28.75, 58.0], "area": 100.5} for i in range(20_000)]
    path = str(tmp_path_factory.mktemp("big") / "big.json")
    plain = _write(path, data, ["info", "annotations", "images", "licenses", "categories"])
    data["extra"] = {"categories": []}
    walked = _write(path.replace("big.json", "walked.json"), data,
                    ["info", "images", "licenses", "annotations", "categories", "extra"])
    return plain, walked


def _peak_bytes(fn, *args):
    tracemalloc.start()
    try:
        out = fn(*args, cache=False)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_far_below_the_file_size(big_json):
    """The annotations are never materialised: the read's peak (tracemalloc) is a small fraction of
    the file, also where the top-level key is found by walking past every annotation."""
    for path in big_json:
        size = os.path.getsize(path)
        assert size > 10 * 2**20
        cats, peak_cats = _peak_bytes(read_json_categories, path)
        n, peak_images = _peak_bytes(count_json_images, path)
        assert [c["id"] for c in cats] == [3, 1, 2] and n == 2000
        assert peak_cats < size / 8 and peak_images < size / 8, (path, size, peak_cats, peak_images)
    # the reference: json.load holds the whole file (and more) at once
    with open(big_json[0]) as f:
        _, peak_load = _peak_bytes(lambda f, cache: json.load(f), f)
    assert peak_load > size


def test_no_torch_or_detectron2_import():
    code = ("import sys, balms_eval.json_categories; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'detectron2')]; "
            "sys.exit(f'imported {bad[:5]}' if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stdout + proc.stderr
