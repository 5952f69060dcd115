"""
What a diagnostic (an error reply, an exception message, a log line) may repeat of the input
a peer sent.

The invariant: each piece of peer input a diagnostic repeats is at most :data:`ECHO_LIMIT`
characters, and building it costs time in proportion to that bound, never to the size of
the input. A peer must not turn a 500 KB method name into a 500 KB error reply, nor a
0.6 MiB map into a ``repr`` of all of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

ECHO_LIMIT = 200
"""The most characters of one piece of peer input a diagnostic repeats; longer text is cut
and ends with ``...`` (docs/rpc.md and docs/security.md state this bound)."""

_CUT = "..."


class _Text(str):
    """Punctuation of a container's repr (a peer's own strings are plain ``str``)."""


def _items(items: Iterator[object], opening: str, closing: str) -> Iterator[object]:
    yield _Text(opening)
    for index, item in enumerate(items):
        if index:
            yield _Text(", ")
        yield item
    yield _Text(closing)


def _entries(mapping: Mapping[object, object]) -> Iterator[object]:
    yield _Text("{")
    for index, (key, value) in enumerate(mapping.items()):
        if index:
            yield _Text(", ")
        yield key
        yield _Text(": ")
        yield value
    yield _Text("}")


def _scalarRepr(value: object, budget: int) -> str:
    """The repr of a leaf, or of enough of it to exceed ``budget`` characters."""
    if isinstance(value, (str, bytes, bytearray)):
        # Cut before repr: repr of the whole would cost time in proportion to its length.
        return repr(value[: budget + 1])
    if isinstance(value, int) and not isinstance(value, bool):
        # int -> str is quadratic in the digits (and refused past sys.int_max_str_digits).
        if value.bit_length() > 4 * ECHO_LIMIT:
            return f"<int of {value.bit_length()} bits>"
        return repr(value)
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    # Anything else a custom serializer decodes to: its own repr could cost anything.
    return f"<{type(value).__name__}>"


def boundedRepr(value: object, limit: int = ECHO_LIMIT) -> str:
    """
    ``repr(value)`` for plain data (what a serializer decodes), cut to at most ``limit``
    characters; it looks at no more of ``value`` than that many characters' worth, however
    long, wide or deep ``value`` is. Objects of other types appear as ``<TypeName>``.

    :param value: anything, typically decoded from a peer's message.
    :param limit: the most characters returned (at least 4).
    """
    pieces: list[str] = []
    size = 0
    # Iterators instead of recursion: neither depth nor width is read beyond the budget.
    pending: list[Iterator[object]] = [iter((value,))]
    while pending and size <= limit:
        try:
            item = next(pending[-1])
        except StopIteration:
            pending.pop()
            continue
        if type(item) is _Text:
            piece: str = item
        elif isinstance(item, (list, tuple)):
            if isinstance(item, list):
                opening, closing = "[", "]"
            else:
                opening, closing = "(", ",)" if len(item) == 1 else ")"
            pending.append(_items(iter(item), opening, closing))
            continue
        elif isinstance(item, Mapping):
            pending.append(_entries(item))
            continue
        else:
            piece = _scalarRepr(item, limit - size)
        pieces.append(piece)
        size += len(piece)
    text = "".join(pieces)
    return text if size <= limit else text[: limit - len(_CUT)] + _CUT


def boundedText(text: str, limit: int = ECHO_LIMIT) -> str:
    """
    ``text`` cut to at most ``limit`` characters (ending with ``...`` when cut): for
    messages that may contain peer input, such as an exception raised while decoding it.

    :param text: the text to repeat.
    :param limit: the most characters returned (at least 4).
    """
    return text if len(text) <= limit else text[: limit - len(_CUT)] + _CUT


def describeError(error: BaseException, limit: int | None = ECHO_LIMIT) -> str:
    """
    ``str(error)``, cut to ``limit`` characters; a placeholder when its ``__str__`` raises.

    :param error: an exception, possibly carrying peer input in its message.
    :param limit: the most characters returned (at least 4); ``None`` for no cut.
    """
    try:
        text = str(error)
    except Exception:
        return f"<unprintable {type(error).__name__}>"
    return text if limit is None else boundedText(text, limit)
