"""FQL's tokens: strings (double or single quoted, JSON escapes), numbers, operators and dotted paths whose
names may escape any character with a backslash. Positions are 1-based, for error messages."""

from __future__ import annotations

import re
from typing import Any

_NAME_CHAR = re.compile(r"[A-Za-z0-9_$\-]")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class TriggerError(ValueError):
    """A trigger that does not parse. ``position`` is 1-based; ``expected`` says what would have fitted."""

    def __init__(self, position: int, expected: str, found: str) -> None:
        self.position = position
        self.expected = expected
        self.found = found
        super().__init__(f"at position {position}: expected {expected}, found {found}")


class Token:
    __slots__ = ("kind", "pos", "text", "value")

    def __init__(self, kind: str, value: Any, pos: int, text: str) -> None:
        self.kind = kind  # name, string, number, an operator or punctuation, end
        self.value = value
        self.pos = pos  # 1-based
        self.text = text

    def describe(self) -> str:
        return "end of trigger" if self.kind == "end" else repr(self.text)


# ---------------------------------------------------------------------------------------------- tokens


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i + 1
        if ch in "\"'":
            value, i = _read_string(text, i)
            tokens.append(Token("string", value, start, text[start - 1 : i]))
            continue
        two = text[i : i + 2]
        if two == "==":
            raise TriggerError(start, "'=' (FQL compares with a single '=')", "'=='")
        if two in ("!=", "<=", ">="):
            tokens.append(Token(two, None, start, two))
            i += 2
            continue
        if ch in "=!<>()[],":
            tokens.append(Token(ch, None, start, ch))
            i += 1
            continue
        m = _NUMBER.match(text, i)
        if m and (ch == "-" or ch.isdigit()):
            tokens.append(Token("number", _number(m.group()), start, m.group()))
            i = m.end()
            continue
        if _NAME_CHAR.match(ch) or ch == "\\":
            steps, i = _read_path(text, i)
            tokens.append(Token("name", steps, start, text[start - 1 : i]))
            continue
        raise TriggerError(start, "a path, a literal, '(', 'not' or an operator", repr(ch))
    tokens.append(Token("end", None, n + 1, ""))
    return tokens


def _read_path(text: str, i: int) -> tuple[list[str], int]:
    """A dotted path whose names may escape any character with a backslash; returns its names."""
    steps: list[str] = []
    name: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                raise TriggerError(i + 1, "a character after '\\'", "end of trigger")
            name.append(text[i + 1])
            i += 2
        elif _NAME_CHAR.match(ch):
            name.append(ch)
            i += 1
        elif ch == ".":
            if not name:
                raise TriggerError(i + 1, "a name before '.'", "'.'")
            steps.append("".join(name))
            name = []
            i += 1
        else:
            break
    if not name:  # the path ends with '.': point at it
        raise TriggerError(i, "a name after '.'", repr(text[i]) if i < n else "end of trigger")
    steps.append("".join(name))
    return steps, i


def _read_string(text: str, i: int) -> tuple[str, int]:
    """Read the string literal opening at ``text[i]``; return its value and the index after its end."""
    quote = text[i]
    out: list[str] = []
    j, n = i + 1, len(text)
    while j < n:
        ch = text[j]
        if ch == quote:
            return "".join(out), j + 1
        if ch == "\\":
            esc = text[j + 1 : j + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                j += 2
                continue
            if esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[j + 2 : j + 6]):
                out.append(chr(int(text[j + 2 : j + 6], 16)))
                j += 6
                continue
            raise TriggerError(
                j + 1, "an escape (\\\" \\' \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)", repr("\\" + esc)
            )
        out.append(ch)
        j += 1
    raise TriggerError(n + 1, f"{quote!r} closing the string opened at position {i + 1}", "end of trigger")


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)
