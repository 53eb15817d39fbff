"""Tokenizer for the STIX pattern grammar (STIX 2.1, which extends 2.0 only by ``EXISTS``).

Token boundaries follow the ANTLR lexer that stix2-patterns generates from the OASIS grammar:
longest match first, case-sensitive keywords, whitespace and ``/* */`` or ``//`` comments
skipped anywhere between tokens.
"""

import re
from typing import Any, NamedTuple

from .errors import PatternError
from .literals import LiteralError, decode_binary, decode_string, find_invalid_escape, parse_timestamp

KEYWORDS = frozenset(
    {
        "AND", "OR", "NOT", "FOLLOWEDBY", "LIKE", "MATCHES", "ISSUPERSET", "ISSUBSET", "EXISTS",
        "LAST", "IN", "START", "STOP", "SECONDS", "WITHIN", "REPEATS", "TIMES",
    }
)

#: Whitespace as the grammar defines it; Python's str.isspace() accepts more characters.
WHITESPACE = (
    " \t\r\n\x0b\x0c\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# Every character of the input falls into exactly one lexeme, because the last alternative
# takes any single character; the tokenizer turns those leftovers into errors.
_LEXEME = re.compile(
    rf"""
      [{WHITESPACE}]+ | /\*.*?\*/ | //[^\r\n]*
    | '[^'\\]*(?:\\.[^'\\]*)*'
    | [thb]'[^']*'
    | [A-Za-z_][A-Za-z0-9_-]*
    | [+-]?[0-9]*\.[0-9]+ | [+-]?(?:0|[1-9][0-9]*)
    | <= | >= | == | != | <>
    | .
    """,
    re.VERBOSE | re.DOTALL,
)

_HEX_BODY = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_BASE64_BODY = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)")
_OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_PUNCTUATION = frozenset("[]():.,*")

# Lexeme class by first character.
_FIRST_CHARACTER = {char: "skip" for char in WHITESPACE}
_FIRST_CHARACTER.update({char: "name" for char in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"})
_FIRST_CHARACTER.update({char: "number" for char in "0123456789+-"})
_FIRST_CHARACTER.update({char: "operator" for char in "=!<>"})
_FIRST_CHARACTER.update({char: "punctuation" for char in _PUNCTUATION})
_FIRST_CHARACTER.update({"'": "string", ".": "number", "/": "slash"})


class Token(NamedTuple):
    """One lexical token.

    Attributes:
        kind: ``'STRING'``, ``'TIMESTAMP'``, ``'HEX'``, ``'BINARY'``, ``'INT'``, ``'FLOAT'``,
            ``'BOOL'``, ``'IDENT'``, ``'EOF'``, a keyword (``'AND'``), an operator (``'<='``)
            or a punctuation character (``'['``).
        value: Decoded value of a literal, the name of an identifier, else the kind.
        position: Zero-based offset of the token's first character in the pattern.
        text: The token exactly as written.
    """

    kind: str
    value: Any
    position: int
    text: str


def tokenize(pattern: str) -> list[Token]:
    """Split ``pattern`` into tokens, decoding literals, and end the list with an EOF token.

    Raises:
        PatternError: A character no token can start with, an unterminated string or comment,
            a string escape other than ``\\'`` and ``\\\\``, or a malformed ``t''``, ``h''``
            or ``b''`` literal.
    """
    tokens: list[Token] = []
    position = 0
    for text in _LEXEME.findall(pattern):
        lexeme_class = _FIRST_CHARACTER.get(text[0])
        if lexeme_class == "skip" or (lexeme_class == "slash" and len(text) > 1):
            pass
        elif lexeme_class == "name":
            tokens.append(_name_token(pattern, position, text))
        elif lexeme_class == "string" and len(text) > 1:
            tokens.append(Token("STRING", _decode_string_token(pattern, position, text), position, text))
        elif lexeme_class == "punctuation" or text == ".":
            tokens.append(Token(text, text, position, text))
        elif lexeme_class == "operator" and text in _OPERATORS:
            operator = _OPERATORS[text]
            tokens.append(Token(operator, operator, position, text))
        elif lexeme_class == "number" and text not in ("+", "-"):
            if "." in text:
                tokens.append(Token("FLOAT", float(text), position, text))
            else:
                tokens.append(Token("INT", int(text), position, text))
        else:
            raise _unmatched_error(pattern, position)
        position += len(text)

    tokens.append(Token("EOF", "EOF", position, ""))
    return tokens


def _name_token(pattern: str, position: int, text: str) -> Token:
    """Classify a lexeme that starts with a letter: prefixed literal, keyword, boolean or name."""
    if text[1:2] == "'":
        return _prefixed_literal(pattern, position, text)
    if text in KEYWORDS:
        return Token(text, text, position, text)
    if text == "true" or text == "false":
        return Token("BOOL", text == "true", position, text)
    return Token("IDENT", text, position, text)


def _decode_string_token(pattern: str, position: int, text: str) -> str:
    body = text[1:-1]
    if "\\" in body:
        offset = find_invalid_escape(body)
        if offset >= 0:
            raise _escape_error(pattern, position + 1 + offset)
    return decode_string(body)


def _escape_error(pattern: str, position: int) -> PatternError:
    sequence = pattern[position : position + 2]
    return PatternError(
        f"invalid escape sequence {sequence} in a string literal: only \\' and \\\\ are allowed "
        "(write a literal backslash as \\\\)",
        pattern,
        position,
    )


def _unmatched_error(pattern: str, position: int) -> PatternError:
    """Explain why no token starts at ``position``."""
    char = pattern[position]
    if char == "'":
        return _unterminated_string_error(pattern, position)
    if pattern.startswith("/*", position):
        return PatternError("unterminated comment: '/*' has no closing '*/'", pattern, position)
    return PatternError(f"unexpected character {char!r}", pattern, position)


def _unterminated_string_error(pattern: str, position: int) -> PatternError:
    """Report the first bad escape in a string that runs to the end, else the missing quote."""
    offset = find_invalid_escape(pattern[position + 1 :])
    if offset >= 0:
        return _escape_error(pattern, position + 1 + offset)
    return PatternError("unterminated string literal: no closing apostrophe", pattern, position)


def _prefixed_literal(pattern: str, position: int, text: str) -> Token:
    """Decode a ``t'...'``, ``h'...'`` or ``b'...'`` literal."""
    prefix = text[0]
    body = text[2:-1]
    if prefix == "t":
        try:
            return Token("TIMESTAMP", parse_timestamp(body), position, text)
        except LiteralError as exc:
            raise PatternError(f"invalid timestamp literal {text}: {exc}", pattern, position) from exc

    if prefix == "h":
        if _HEX_BODY.fullmatch(body) is None:
            raise PatternError(
                f"invalid hex literal {text}: it needs an even number of hex digits", pattern, position
            )
        return Token("HEX", bytes.fromhex(body), position, text)

    if _BASE64_BODY.fullmatch(body) is None:
        raise PatternError(
            f"invalid binary literal {text}: it needs non-empty, padded base64", pattern, position
        )
    return Token("BINARY", decode_binary(body), position, text)
