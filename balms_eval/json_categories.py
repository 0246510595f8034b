"""Read one top-level value of a large JSON annotation file without loading the file.

An LVIS v1 training file is ~1 GB (1.27M annotations) and ``json.load`` of it takes tens of seconds
and several GB, while a class prior needs only its ``categories`` (1,203 small objects) and, at
most, the number of entries of its ``images``. :func:`read_json_categories` and
:func:`count_json_images` get those with memory O(size of that value), never O(size of the file).

How a top-level key is found, exactly (valid JSON assumed only where the file is not read):

* Key token. In JSON a ``"`` inside a string is always escaped, so a ``"`` preceded by an even
  number of backslashes delimits a string; ``"categories"`` starting at such a quote and followed by
  whitespace and ``:`` is an object key (at some depth). The file is searched backwards, in chunks
  (plain reads, not ``mmap``: pages of a mapped file count towards the process's resident memory),
  for the last such key token. None in the whole file: the key is absent.
* Tail check (LVIS and COCO files put ``categories`` last): from that key, decode its value, then
  decode (or skip) the members that follow, ``, "key": value``, up to a ``}`` followed only by
  whitespace to the end of the file. That ``}`` closes the root object, so the key is a top-level
  one. Cost: O(bytes after the key).
* Head walk (any other layout, or when the key found last is a nested one): walk the root object's
  members from the start, skipping each value element by element, up to the key. Cost: O(bytes
  before the key).

A key token nearer the end than the start goes to the tail check first (and to the head walk if that
fails), any other to the head walk alone. Before all that, a file whose first and last bytes
(whitespace aside) are not ``{`` and ``}`` is rejected: a cheap check that catches a truncated file
whatever part of it is read. Skipped values are decoded one element at a time with
:meth:`json.JSONDecoder.raw_decode` and dropped, so memory stays O(largest element) while a
10^6-element array is passed. Only what is read is checked for syntax: a malformed annotation in a
part that is not read does not raise here (``json.load`` would). Duplicate top-level keys: the tail
check finds the last (as ``json.load`` keeps), the head walk the first.

Errors are one line and name the file: :class:`FileNotFoundError`, :class:`MissingKeyError` (also a
``KeyError``), :class:`MalformedJSONError` (also a ``ValueError``, as :class:`json.JSONDecodeError` is).

Results are cached per process, keyed on (real path, size, modification time, what was read): the
number, or the value's JSON text, which each call decodes again (callers never share an object).
"""
import collections
import json
import logging
import os
import re
import threading

__all__ = [
    "JSONStreamError",
    "MissingKeyError",
    "MalformedJSONError",
    "read_top_level_value",
    "read_top_level_text",
    "count_top_level_array",
    "read_json_categories",
    "count_json_images",
    "clear_cache",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 18  # bytes read at a time when decoding forward (the window grows for a larger element)
_SEARCH_CHUNK = 1 << 18  # bytes read at a time by the backward key search
_NEAR_END = 64  # a decode error this close to the end of a window that is not the file's end: read more
_WS = re.compile(r"[ \t\n\r]*")
_WS_BYTES = b" \t\n\r"
_DECODER = json.JSONDecoder()


class JSONStreamError(ValueError):
    """A JSON annotation file cannot give the value asked for."""


class MissingKeyError(JSONStreamError, KeyError):
    """The file's root object has no such key."""

    __str__ = ValueError.__str__  # a KeyError would print its message quoted


class MalformedJSONError(JSONStreamError):
    """The part of the file that was read is not valid JSON (or not of the expected shape)."""


class _File:
    """A binary file read by offset."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"JSON annotation file not found: {self.path}")
        self.f = open(self.path, "rb")
        self.size = os.fstat(self.f.fileno()).st_size

    def read(self, offset, n):
        self.f.seek(offset)
        return self.f.read(max(0, n))

    def close(self):
        self.f.close()

    def malformed(self, offset, msg):
        """A :class:`MalformedJSONError` naming the file, the byte offset and its line."""
        line, pos, chunk = 1, 0, _SEARCH_CHUNK
        while pos < offset:
            line += self.read(pos, min(chunk, offset - pos)).count(b"\n")
            pos += chunk
        return MalformedJSONError(f"Malformed JSON in {self.path} at byte {offset} (line {line}): {msg}")


class _Stream:
    """Forward decoding from a byte offset through a window of text.

    The window is the file's bytes decoded as latin-1 (one character per byte, so string indices are
    byte offsets); UTF-8 multi-byte sequences never contain JSON's structural bytes, so the structure
    read this way is the file's. A value that is kept is decoded again from its bytes as UTF-8."""

    def __init__(self, src, offset):
        self.src = src
        self.base = offset  # file offset of buf[0]
        self.buf = ""
        self.i = 0  # position in buf
        self.eof = offset >= src.size

    def offset(self):
        return self.base + self.i

    def _more(self):
        """Append the next bytes of the file to the window (at least doubling a window that is not
        enough for one element); returns False at the end of the file."""
        if self.eof:
            return False
        if self.i:
            self.base += self.i
            self.buf = self.buf[self.i:]
            self.i = 0
        start = self.base + len(self.buf)
        data = self.src.read(start, max(_CHUNK, len(self.buf)))
        self.buf += data.decode("latin-1")
        self.eof = not data or start + len(data) >= self.src.size
        return bool(data)

    def peek(self):
        """The next character after whitespace ('' at the end of the file); skips the whitespace."""
        while True:
            self.i = _WS.match(self.buf, self.i).end()
            if self.i < len(self.buf):
                return self.buf[self.i]
            if not self._more():
                return ""

    def expect(self, char, what):
        c = self.peek()
        if c != char:
            found = repr(c) if c else "the end of the file"
            raise self.src.malformed(self.offset(), f"expecting {what}, found {found}")
        self.i += 1

    def value(self):
        """Decode the value at the current position (whitespace skipped before); returns
        (value as decoded from latin-1 text, its start offset, its end offset)."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.i)
            except json.JSONDecodeError as e:
                truncated = e.pos >= len(self.buf) - _NEAR_END or e.msg.startswith("Unterminated string")
                if truncated and self._more():
                    continue
                raise self.src.malformed(self.base + e.pos, e.msg) from None
            if end >= len(self.buf) and self._more():
                continue  # a number at the window's end may go on
            start, self.i = self.base + self.i, end
            return obj, start, self.base + end

    def value_text(self):
        """The JSON text of the value at the current position (checked), decoded as UTF-8."""
        _, start, end = self.value()
        text = self.buf[start - self.base:end - self.base]
        try:
            return text.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.src.malformed(start + e.start, f"invalid UTF-8 ({e.reason})") from None

    def key(self):
        """An object key and the ':' after it."""
        if self.peek() != '"':
            self.expect('"', "a property name enclosed in double quotes")
        k, _, _ = self.value()
        self.expect(":", "':' after a property name")
        return k

    def skip(self):
        """Pass the value at the current position one element (or member) at a time; returns the
        number of elements of an array, else None."""
        c = self.peek()
        if c not in ("[", "{"):
            self.value()
            return None
        close = "]" if c == "[" else "}"
        self.i += 1
        n = 0
        if self.peek() == close:
            self.i += 1
            return n if c == "[" else None
        while True:
            if c == "{":
                self.key()
            self.value()
            n += 1
            d = self.peek()
            if d == ",":
                self.i += 1
            elif d == close:
                self.i += 1
                return n if c == "[" else None
            else:
                self.expect(close, f"',' or '{close}'")


def _backslashes_before(src, pos):
    """The number of consecutive backslashes just before byte ``pos``."""
    n = 0
    while pos > 0:
        start = max(0, pos - 64)
        chunk = src.read(start, pos - start)
        stripped = chunk.rstrip(b"\\")
        n += len(chunk) - len(stripped)
        if stripped or start == 0:
            return n
        pos = start
    return n


def _colon_follows(src, pos):
    """Whether the first byte from ``pos`` on that is not whitespace is ':'."""
    while pos < src.size:
        chunk = src.read(pos, 64).lstrip(_WS_BYTES)
        if chunk:
            return chunk[:1] == b":"
        pos += 64
    return False


def _last_key_token(src, key):
    """Byte offset of the last ``"key"`` key token in the file (see the module doc), or None."""
    token = json.dumps(key).encode("utf-8")
    size, n = src.size, len(token)
    end = size  # tokens starting before ``end`` are still to be searched
    while end > 0:
        start = max(0, end - _SEARCH_CHUNK)
        buf = src.read(start, min(size, end + n - 1) - start)
        hi = len(buf)
        while True:
            j = buf.rfind(token, 0, hi)
            if j < 0:
                break
            pos = start + j
            if _backslashes_before(src, pos) % 2 == 0 and _colon_follows(src, pos + n):
                return pos
            hi = j + n - 1
        end = start
    return None


def _tail_check(src, pos, key, count):
    """From the key token at ``pos``: its value (or element count), then the members after it up to
    the root's closing brace. Returns (True, result) if the key is a top-level one, else (False, None)."""
    s = _Stream(src, pos)
    if s.key() != key:
        return False, None
    result = _read(s, key, count)
    while True:
        c = s.peek()
        if c == "}":
            s.i += 1
            return (True, result) if s.peek() == "" else (False, None)
        if c != ",":
            return False, None
        s.i += 1
        if s.peek() != '"':
            return False, None
        s.key()
        s.skip()


def _head_walk(src, key, count):
    """Walk the root object's members from the start to ``key``: (True, result), or (False, None)
    if the root object has no such key."""
    s = _Stream(src, 0)
    c = s.peek()
    if c != "{":
        raise src.malformed(s.offset(), f"the top-level value is not an object (starts with {c!r})")
    s.i += 1
    if s.peek() == "}":
        return False, None
    while True:
        k = s.key()
        if k == key:
            return True, _read(s, key, count)
        s.skip()
        c = s.peek()
        if c == "}":
            return False, None
        s.expect(",", "',' or '}' after a member of the top-level object")


def _read(s, key, count):
    if not count:
        return s.value_text()
    at = s.offset()
    if s.peek() != "[":
        raise s.src.malformed(at, f"the top-level {key!r} is not an array")
    return s.skip()


def _check_ends(src):
    """The file's first and last bytes (but whitespace) must be those of an object: a cheap check that
    catches a truncated file whatever part of it is read."""
    head = src.read(0, 4096).lstrip(_WS_BYTES)[:1]
    tail = src.read(max(0, src.size - 4096), 4096).rstrip(_WS_BYTES)[-1:]
    if not head:
        raise src.malformed(0, "the file is empty")
    if head != b"{":
        raise src.malformed(0, f"the top-level value is not an object (starts with {head.decode('latin-1')!r})")
    if tail != b"}":
        raise src.malformed(src.size, "the file ends before the top-level object is closed (truncated?)")


def _find(path, key, count):
    src = _File(path)
    try:
        _check_ends(src)
        pos = _last_key_token(src, key)
        if pos is None:
            raise MissingKeyError(f"{src.path}: no top-level {key!r} key in the JSON file")
        tail_first = src.size - pos <= pos
        if tail_first:
            found, result = _tail_check(src, pos, key, count)
            if found:
                return result
            logger.debug(f"{src.path}: the last {key!r} key is not a top-level one; walking the file")
        found, result = _head_walk(src, key, count)
        if not found:
            raise MissingKeyError(f"{src.path}: no top-level {key!r} key in the JSON file")
        return result
    finally:
        src.close()


def read_top_level_text(path, key):
    """The JSON text of the value of the top-level ``key`` of the JSON object in ``path``."""
    return _find(path, key, count=False)


def read_top_level_value(path, key):
    """The value of the top-level ``key`` of the JSON object in ``path`` (memory O(that value))."""
    return json.loads(read_top_level_text(path, key))


def count_top_level_array(path, key):
    """The number of elements of the top-level array ``key`` in ``path``, without keeping them."""
    return _find(path, key, count=True)


_cache = collections.OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 16


def _cached(path, what, fn, cache):
    """``fn()``, kept per process under (real path, size, modification time, ``what``). Values are
    immutable (a number, or the JSON text of a value), so callers never share a mutable result."""
    if not cache:
        return fn()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"JSON annotation file not found: {path}")
    st = os.stat(path)
    k = (os.path.realpath(path), st.st_size, st.st_mtime_ns, what)
    with _cache_lock:
        if k in _cache:
            _cache.move_to_end(k)
            return _cache[k]
    value = fn()
    with _cache_lock:
        _cache[k] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def clear_cache():
    """Forget the results cached by :func:`read_json_categories` and :func:`count_json_images`."""
    with _cache_lock:
        _cache.clear()


def read_json_categories(path, *, cache=True):
    """The top-level ``categories`` of a COCO/LVIS-format file: a list of objects, each with an
    ``id``, as ``json.load(f)["categories"]`` gives them (memory O(categories), not O(file))."""
    path = os.fspath(path)
    cats = json.loads(_cached(path, "categories", lambda: read_top_level_text(path, "categories"), cache))
    if not isinstance(cats, list):
        raise MalformedJSONError(f"{path}: the top-level 'categories' is not a list ({type(cats).__name__})")
    for j, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c:
            raise MalformedJSONError(f"{path}: categories[{j}] is not an object with an 'id': {str(c)[:80]}")
    return cats


def count_json_images(path, *, cache=True):
    """``len(json.load(f)["images"])`` of a COCO/LVIS-format file, without building the images."""
    path = os.fspath(path)
    return _cached(path, "num_images", lambda: count_top_level_array(path, "images"), cache)
