"""The error a bad results entry raises, and how an entry is named in it (``results[i] (...)``)."""


class LVISResultsError(ValueError):
    """A detection in a results list is invalid; the message names the entry."""


def describe_entry(index, entry=None):
    """``results[index]``, followed by the entry's ids and score where known (``entry``: the
    results dict, or a dict of the values read into columns)."""
    if isinstance(entry, dict):
        ids = ", ".join(f"{k}={entry[k]!r}" for k in ("image_id", "category_id", "score") if k in entry)
        if ids:
            return f"results[{index}] ({ids})"
    return f"results[{index}]"
