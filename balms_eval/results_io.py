"""JSON files in and out, with orjson (3-4x faster than the standard library on results files):
annotation / results files read with errors naming the file, and a results file written from
columns in chunks (never as one list of per-detection dicts)."""
import orjson

from .errors import JSONFileError  # noqa: F401 (also importable from here)

WRITE_CHUNK = 100_000  # detections turned into dicts at a time when writing
LOCATE_MAX_BYTES = 256 << 20  # files read again (Python's json) to name the entry with a NaN / Infinity


def read_bytes(path, what="JSON", limit=-1):
    """The bytes of ``path`` (its first ``limit`` bytes, -1: all); :class:`JSONFileError`
    (``path: ...``) if it is missing, a directory, unreadable or empty."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except FileNotFoundError:
        raise JSONFileError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise JSONFileError(f"{path}: is a directory, not the {what} file (JSON) expected") from None
    except OSError as e:
        raise JSONFileError(f"{path}: cannot read the {what} file: {e.strerror or e}") from None
    if not data.strip() and (limit < 0 or len(data) < limit):
        raise JSONFileError(f"{path}: the {what} file is empty; expected JSON")
    return data


def check_readable(path, what="JSON"):
    """:func:`read_bytes`'s errors for ``path`` without reading all of it: a file given on a
    command line is checked before a long read of another."""
    read_bytes(path, what, limit=1 << 16)


def load_json(path, what="JSON"):
    """The parsed content of ``path``; :class:`JSONFileError` naming it if missing, unreadable,
    empty or not valid JSON."""
    data = read_bytes(path, what)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise JSONFileError(_non_finite_message(data, e, path, what) or
                            f"{path}: the {what} file is not valid JSON: {e}") from None


class _NonFinite:
    """What Python's json reads a NaN / Infinity / -Infinity token as, to find where it is."""


def _non_finite_message(data, error, path, what):
    """When ``error`` (orjson's) stops at NaN, Infinity or -Infinity (not JSON; Python's
    json.dump writes them for non-finite floats): a message saying so, and where (the entry, as
    ``results[3].score``, for files up to LOCATE_MAX_BYTES; always the line and column).
    None for any other error."""
    pos = error.pos
    if not data[:pos].isascii():  # orjson counts characters; find the byte offset
        pos = len(data.decode("utf-8", "replace")[:pos].encode("utf-8"))
    token = next((t for t in (b"NaN", b"Infinity") if data.startswith(t, pos)), None)
    if token is None:
        return None
    if token == b"Infinity" and pos and data[pos - 1:pos] == b"-":
        token = b"-Infinity"
    where = _non_finite_path(data, "results" if what == "results" else "") if len(data) <= LOCATE_MAX_BYTES else None
    at = f"at {where} (line {error.lineno}, column {error.colno})" if where else \
        f"at line {error.lineno}, column {error.colno} (char {error.pos})"
    return (f"{path}: the {what} file is not valid JSON: {token.decode()} {at}. JSON has no NaN or Infinity (Python's "
            f"json.dump writes them for non-finite floats, e.g. a NaN score); write finite numbers")


def _non_finite_path(data, root):
    """The path (``results[3].score``) of the first NaN / Infinity in ``data``, read by Python's
    json (which accepts them); None if it cannot read the file either."""
    import json

    try:
        value = json.loads(data, parse_constant=lambda name: _NonFinite())
    except ValueError:
        return None

    def find(v, at):
        if isinstance(v, _NonFinite):
            return at
        items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
        for k, x in items:
            if isinstance(x, (dict, list, _NonFinite)):
                found = find(x, f"{at}[{k}]" if isinstance(v, list) else f"{at}.{k}" if at else str(k))
                if found:
                    return found
        return None

    return find(value, root)


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
