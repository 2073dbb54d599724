"""String functions, with Trino's semantics (positions and lengths count code points).

* ``concat`` (and ``||``) is NULL when any argument is (DuckDB's concat skips NULLs);
* ``substr``/``substring`` is 1-based, a negative start counts from the end, and gives '' for
  a start of 0, a length below 1 or a start before the beginning (see :func:`substring`);
* ``split_part`` is NULL past the last field (DuckDB: ''), an empty delimiter splits into
  characters; ``strpos`` is 0 when not found, 1 for an empty needle;
* ``regexp_extract`` is NULL when the pattern does not match (DuckDB: ''); patterns are
  RE2 (Trino's default is joni, Java's syntax: the common subset agrees);
* ``trim``/``ltrim``/``rtrim`` remove Unicode whitespace (DuckDB's remove only spaces);
* LIKE has no escape character unless ``ESCAPE`` names one (Arrow's ``match_like`` treats
  ``\\`` as one, so the pattern is rewritten for it: :func:`like_pattern`).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from mpp.errors import SqlError
from mpp.functions import Function, Value, as_array, constant, flat, register, register_kernel
from mpp.functions.signatures import BIGINT, BOOLEAN, STRING, fixed
from mpp.logical.expr import Call

_NULL_STRING = pa.scalar(None, pa.string())


def _error(call: Call, message: str) -> SqlError:
    return SqlError(message, call.line, call.column)


def _unary(kernel: object) -> object:
    return lambda call, args, n: kernel(args[0])  # type: ignore[operator]


def _length(call: Call, args: list[Value], n: int) -> Value:
    return pc.cast(pc.utf8_length(args[0]), pa.int64())


def _trim(side: str) -> object:
    kernels = {"both": (pc.utf8_trim_whitespace, pc.utf8_trim),
               "left": (pc.utf8_ltrim_whitespace, pc.utf8_ltrim),
               "right": (pc.utf8_rtrim_whitespace, pc.utf8_rtrim)}[side]

    def kernel(call: Call, args: list[Value], n: int) -> Value:
        if len(args) == 1:
            return kernels[0](args[0])
        chars = constant(args[1])
        if chars is None:
            return _NULL_STRING
        return kernels[1](args[0], characters=chars) if chars else args[0]

    return kernel


def _concat(call: Call, args: list[Value], n: int) -> Value:
    # binary_join_element_wise emits NULL when any value is NULL, as Trino's concat does.
    return pc.binary_join_element_wise(*args, pa.scalar("", pa.string()))


def _replace(call: Call, args: list[Value], n: int) -> Value:
    search = constant(args[1])
    replacement = constant(args[2]) if len(args) > 2 else ""
    if search is None or replacement is None:
        return _NULL_STRING
    if search == "":  # Trino inserts the replacement around every character
        # (Arrow's replace_substring never ends on an empty pattern; RE2's empty match does).
        return pc.replace_substring_regex(args[0], pattern="",
                                          replacement=replacement.replace("\\", "\\\\"))
    return pc.replace_substring(args[0], pattern=search, replacement=replacement)


def _split_part(call: Call, args: list[Value], n: int) -> Value:
    delimiter = constant(args[1])
    if delimiter is None:
        return _NULL_STRING
    value, index = flat(args[0], n), pc.cast(as_array(args[2], n), pa.int64())
    if pc.any(pc.less(index, 1)).as_py():
        raise _error(call, "Index must be greater than zero")
    if delimiter == "":  # every character is a field (Trino's StringFunctions.splitPart)
        if not isinstance(args[2], pa.Scalar):
            raise _error(call, "unsupported: split_part with an empty delimiter needs a "
                               "constant index")
        at = constant(args[2])
        present = pc.greater_equal(pc.utf8_length(value), at)
        return pc.if_else(present, pc.utf8_slice_codeunits(value, at - 1, at), _NULL_STRING)
    fields = pc.split_pattern(value, pattern=delimiter)
    present = pc.fill_null(pc.less_equal(index, pc.list_value_length(fields)), False)
    starts = pc.cast(fields.offsets[:-1], pa.int64())
    positions = pc.if_else(present, pc.add(starts, pc.subtract(index, 1)), 0)
    if len(fields.values) == 0:
        return pa.nulls(len(value), pa.string())
    return pc.if_else(present, pc.take(fields.values, positions), _NULL_STRING)


def _strpos(call: Call, args: list[Value], n: int) -> Value:
    needle = constant(args[1])
    if needle is None:
        return pa.scalar(None, pa.int64())
    if needle == "":
        return pc.if_else(pc.is_valid(as_array(args[0], n)), pa.scalar(1, pa.int64()),
                          pa.scalar(None, pa.int64()))
    value = flat(args[0], n)
    found = pc.greater_equal(pc.find_substring(value, pattern=needle), 0)
    head = pc.list_element(pc.split_pattern(value, pattern=needle, max_splits=1), 0)
    position = pc.add(pc.cast(pc.utf8_length(head), pa.int64()), 1)
    return pc.if_else(found, position, pa.scalar(0, pa.int64()))


def _starts_with(call: Call, args: list[Value], n: int) -> Value:
    prefix = constant(args[1])
    if prefix is None:
        return pa.scalar(None, pa.bool_())
    return pc.starts_with(args[0], pattern=prefix)


def _regexp_like(call: Call, args: list[Value], n: int) -> Value:
    pattern = constant(args[1])
    if pattern is None:
        return pa.scalar(None, pa.bool_())
    return pc.match_substring_regex(args[0], pattern=pattern)


def group_count(pattern: str) -> int:
    """The number of capturing groups in regular expression ``pattern``."""
    return re.compile(pattern).groups


def _named_groups(pattern: str) -> str:
    """``pattern`` with every capturing group named ``g1``, ``g2``, ... (pc.extract_regex
    returns named groups only), the whole match as ``g0``."""
    out, i, group, in_class = [], 0, 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]":  # []...]: the ] is a member
                out.append("[]")
                i += 2
                continue
        elif ch == "(":
            rest = pattern[i + 1:]
            if not rest.startswith("?"):
                group += 1
                ch = f"(?P<g{group}>"
            elif re.match(r"\?P?<(?![=!])", rest):  # (?P<name> / (?<name>: a capturing group
                group += 1
                ch = f"(?P<g{group}>"
                i += rest.index(">") + 1
        out.append(ch)
        i += 1
    return "(?P<g0>" + "".join(out) + ")"


def _regexp_extract(call: Call, args: list[Value], n: int) -> Value:
    pattern = constant(args[1])
    group = constant(args[2]) if len(args) > 2 else 0
    if pattern is None or group is None:
        return _NULL_STRING
    count = group_count(pattern)
    if group < 0 or group > count:
        raise _error(call, f"Pattern has {count} groups. Cannot access group {group}")
    extracted = pc.extract_regex(args[0], pattern=_named_groups(pattern))
    return pc.struct_field(extracted, [group])


def substring(call: Call, args: list[Value], n: int) -> Value:
    """Trino's ``substr(s, start[, length])`` (StringFunctions.substr) in code points."""
    value, start, length = args[0], call.option("start"), call.option("length")
    if start == 0 or (length is not None and length <= 0):
        return pc.utf8_slice_codeunits(value, 0, 0)  # '' (NULL stays NULL)
    if start > 0:
        stop = None if length is None else start - 1 + length
        return pc.utf8_slice_codeunits(value, start - 1, stop)
    stop = None if length is None or start + length >= 0 else start + length
    sliced = pc.utf8_slice_codeunits(value, start, stop)
    # A start before the beginning gives '' in Trino; Python's slice would clamp it to 0.
    before = pc.less(pc.utf8_length(value), -start)
    return pc.if_else(before, pa.scalar("", sliced.type), sliced)


def like_pattern(pattern: str, escape: str | None) -> str:
    """Trino's LIKE ``pattern`` (with ``escape``, if any) as an Arrow ``match_like`` pattern,
    whose escape character is ``\\``. Raises ValueError where Trino does."""
    if escape is None:
        return pattern.replace("\\", "\\\\")
    if len(escape) != 1:
        raise ValueError("Escape string must be a single character")
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == escape:
            following = pattern[i + 1:i + 2]
            if following not in ("%", "_", escape):
                raise ValueError("Escape character must be followed by '%', '_' or the "
                                 "escape character")
            out.append("\\" + following if following in "%_" else following.replace(
                "\\", "\\\\"))
            i += 2
            continue
        out.append("\\\\" if ch == "\\" else ch)
        i += 1
    return "".join(out)


def _like(call: Call, args: list[Value], n: int) -> Value:
    pattern = constant(args[1])
    if pattern is None:
        return pa.scalar(None, pa.bool_())
    return pc.match_like(as_array(args[0], n), pattern=like_pattern(pattern,
                                                                    call.option("escape")))


register_kernel("substring", substring, names=("substring", "substr"))
register_kernel("like", _like)

register(Function("lower", (1, 1), fixed(STRING, result=STRING), _unary(pc.utf8_lower),
                  "lower(varchar)"))
register(Function("upper", (1, 1), fixed(STRING, result=STRING), _unary(pc.utf8_upper),
                  "upper(varchar)"))
register(Function("length", (1, 1), fixed(STRING, result=BIGINT), _length, "length(varchar)"))
for _side, _name in (("both", "trim"), ("left", "ltrim"), ("right", "rtrim")):
    register(Function(_name, (1, 2), fixed(STRING, result=STRING), _trim(_side),
                      f"{_name}(varchar[, varchar characters])", constants=(1,)))
register(Function("concat", (1, None), fixed(STRING, result=STRING), _concat,
                  "concat(varchar, ...)"))
register(Function("replace", (2, 3), fixed(STRING, result=STRING), _replace,
                  "replace(varchar, varchar search[, varchar replacement])",
                  constants=(1, 2)))
register(Function("split_part", (3, 3), fixed(STRING, STRING, BIGINT, result=STRING),
                  _split_part, "split_part(varchar, varchar delimiter, bigint index)",
                  constants=(1,)))
register(Function("strpos", (2, 2), fixed(STRING, result=BIGINT), _strpos,
                  "strpos(varchar, varchar substring)", constants=(1,)))
register(Function("starts_with", (2, 2), fixed(STRING, result=BOOLEAN), _starts_with,
                  "starts_with(varchar, varchar prefix)", constants=(1,)))
register(Function("regexp_like", (2, 2), fixed(STRING, result=BOOLEAN), _regexp_like,
                  "regexp_like(varchar, varchar pattern)", constants=(1,)))
register(Function("regexp_extract", (2, 3), fixed(STRING, STRING, BIGINT, result=STRING),
                  _regexp_extract, "regexp_extract(varchar, varchar pattern[, bigint group])",
                  constants=(1, 2)))
