"""JSON files in and out, with orjson (3-4x faster than the standard library on results files):
annotation / results files read with errors naming the file, and a results file written from
columns in chunks (never as one list of per-detection dicts)."""
import orjson

WRITE_CHUNK = 100_000  # detections turned into dicts at a time when writing


class JSONFileError(ValueError):
    """A JSON file is missing or not valid JSON; the message names it."""


def load_json(path, what="JSON"):
    """The parsed content of ``path``; :class:`JSONFileError` naming it if absent or malformed."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise JSONFileError(f"{what} file not found: {path}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise JSONFileError(f"{what} file {path} is not valid JSON: {e}") from None


def write_results_json(columns, path):
    """Write ``columns`` (:class:`~.columns.ResultColumns`) as a results file: a JSON list of
    {"image_id", "category_id", "bbox", "score", "segmentation"} (the geometry the columns hold)."""
    with open(path, "wb") as f:
        f.write(b"[")
        for begin in range(0, len(columns), WRITE_CHUNK):
            if begin:
                f.write(b",")
            f.write(orjson.dumps(columns.entries(begin, begin + WRITE_CHUNK))[1:-1])
        f.write(b"]")
