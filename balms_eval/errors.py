"""The errors bad input raises: a detection of a results list (named ``results[i] (...)``), and a
file that cannot be used (its message starts with the file's path, ``path: what is wrong``)."""


class LVISResultsError(ValueError):
    """A detection in a results list is invalid; the message names the entry."""


class InputFileError(ValueError):
    """A file given to the evaluation (annotations, training set, results) cannot be used; the
    message is one line, ``<path>: <what is wrong>``."""


class JSONFileError(InputFileError):
    """A JSON file is missing, unreadable, empty or not valid JSON."""


class AnnotationFileError(InputFileError):
    """A COCO/LVIS-format annotation file (ground truth or training set) is valid JSON but not a
    usable annotation file, or does not fit the file it is used with; the message names the entry."""


def describe_entry(index, entry=None):
    """``results[index]``, followed by the entry's ids and score where known (``entry``: the
    results dict, or a dict of the values read into columns)."""
    if isinstance(entry, dict):
        ids = ", ".join(f"{k}={entry[k]!r}" for k in ("image_id", "category_id", "score") if k in entry)
        if ids:
            return f"results[{index}] ({ids})"
    return f"results[{index}]"


def json_type(value):
    """``value``'s JSON type with its article: "an object", "a list", "a string", "a number", "a
    boolean" or "null"."""
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    for types, name in ((dict, "an object"), ((list, tuple), "a list"), ((str, bytes), "a string"),
                        ((int, float), "a number")):
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"


def id_range(ids):
    """``"1..1203"``: the smallest and largest of ``ids``, for messages ("none" when empty)."""
    return f"{min(ids)}..{max(ids)}" if ids else "none"
