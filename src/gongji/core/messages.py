"""Texts shown to people, kept as a gettext msgid (English) and its values until they are rendered.

Rule code (pure, no I/O) cannot know who will read its explanation, so it
returns `Text` objects; pages, the API and the CLI render them in the
reader's language. Stored as JSON (`{"template": …, "values": {…}}`), an
explanation recorded today renders in either language tomorrow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def identity(message: str) -> str:
    return message


@dataclass(frozen=True)
class Text:
    template: str
    values: dict[str, str] = field(default_factory=dict)

    def render(self, gettext: Callable[[str], str] = identity) -> str:
        return gettext(self.template).format(**self.values)

    @classmethod
    def of(cls, stored: Any) -> Text:
        """Back from JSON; plain strings (explanations stored before texts were structured) pass through."""
        if isinstance(stored, str):
            return cls(stored.replace("{", "{{").replace("}", "}}"))
        return cls(stored["template"], dict(stored.get("values", {})))
