from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A CharField that refuses non-strings (DRF's turns ``123`` into ``"123"``) and NUL bytes.

    PostgreSQL cannot store NUL in text, and a lone surrogate cannot be encoded: both are refused
    here as a 400 instead of failing in the database as a 500.
    """

    default_error_messages = {
        "not_a_string": "Must be a string.",
        "nul": "Must not contain NUL characters.",
        "surrogate": "Must not contain unpaired surrogate characters.",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        if "\x00" in data:
            self.fail("nul")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("surrogate")
        # The limit holds for the string as sent, as the OpenAPI schema's maxLength says; DRF
        # would count only what is left after trimming the whitespace around it.
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)
