"""Errors that turn an input into a rejection rather than stopping a build."""

from __future__ import annotations


class RejectedInput(Exception):
    """An input that cannot become a record.

    ``code`` is a short machine-readable category (``partial_occupancy``, ``parse_error`` ...);
    ``reason`` is the human message. The build stores both with the input's path or id.
    """

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
