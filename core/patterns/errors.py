"""The exception raised for a STIX pattern that cannot be parsed."""

_CONTEXT_BEFORE = 10
_CONTEXT_CHARS = 40


class PatternError(ValueError):
    """Raised when a STIX pattern is invalid; the caller should skip that indicator.

    Attributes:
        pattern: The full pattern text as given.
        position: Zero-based character offset of the offending text in ``pattern``.
        reason: The message without the position and the quoted excerpt.
    """

    def __init__(self, reason: str, pattern: str, position: int) -> None:
        self.reason = reason
        self.pattern = pattern
        self.position = position
        excerpt = _excerpt(pattern, position)
        super().__init__(f"invalid STIX pattern at position {position}: {reason}{excerpt}")

    def __reduce__(self) -> tuple[type["PatternError"], tuple[str, str, int]]:
        # Keeps the exception picklable (for worker processes) despite the custom __init__.
        return (type(self), (self.reason, self.pattern, self.position))


def _excerpt(pattern: str, position: int) -> str:
    """Quote the pattern around ``position``, shortened to a readable length."""
    if not isinstance(pattern, str) or not pattern:
        return ""

    start = max(position - _CONTEXT_BEFORE, 0)
    end = start + _CONTEXT_CHARS
    text = pattern[start:end]
    if start > 0:
        text = "..." + text
    if end < len(pattern):
        text += "..."
    return f" (near {text!r})"
