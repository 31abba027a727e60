"""The voice list shipped inside the package (data/voices.tsv)."""

from __future__ import annotations

import difflib
import unicodedata
from functools import lru_cache
from importlib import resources

from . import models
from .errors import UsageError
from .models import Voice


@lru_cache(maxsize=1)
def all_voices() -> tuple[Voice, ...]:
    text = resources.files("orga_cli").joinpath("data/voices.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    return tuple(Voice(*(cell.strip() for cell in row[:4])) for row in rows[1:] if len(row) >= 4)


DEFAULT_VOICE = models.DEFAULT_VOICE


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def find_voice(name: str) -> Voice | None:
    """The voice called *name*: exact first, then ignoring case, then ignoring accents too.

    An accent-insensitive match that is ambiguous (Chloe / Chloé) returns None.
    """
    voices = all_voices()
    for voice in voices:
        if voice.name == name:
            return voice
    by_case = [v for v in voices if v.name.casefold() == name.casefold()]
    if len(by_case) == 1:
        return by_case[0]
    folded = [v for v in voices if _fold(v.name) == _fold(name)]
    return folded[0] if len(folded) == 1 else None


def suggest_voices(name: str, limit: int = 3) -> list[str]:
    """The closest voice names, for 'did you mean' messages."""
    names = {_fold(v.name): v.name for v in all_voices()}
    matches = difflib.get_close_matches(_fold(name), list(names), n=limit, cutoff=0.5)
    exact_fold = [v.name for v in all_voices() if _fold(v.name) == _fold(name)]
    ordered = exact_fold + [names[m] for m in matches]
    return list(dict.fromkeys(ordered))[:limit]


def resolve_voice(name: str) -> str:
    """The voice's exact name, or a UsageError suggesting the closest ones."""
    voice = find_voice(name)
    if voice is None:
        close = suggest_voices(name)
        hint = f"did you mean {' or '.join(close)}?" if close else "see `orga voices`"
        raise UsageError(f"unknown voice {name!r}", hint)
    return voice.name


def languages() -> list[str]:
    return sorted({v.language for v in all_voices()})


# ISO 639-1 codes and English names for the languages of the list.
_LANGUAGE_ALIASES = {
    "en": "english",
    "es": "espanol",
    "spanish": "espanol",
    "fr": "francais",
    "french": "francais",
    "pt": "portugues",
    "portuguese": "portugues",
    "it": "italiano",
    "italian": "italiano",
}


def filter_voices(language: str | None = None, gender: str | None = None) -> list[Voice]:
    """Voices whose language (name, English name or ISO code) and gender match the prefixes."""
    out = list(all_voices())
    if language:
        want = _fold(language)
        want = _LANGUAGE_ALIASES.get(want, want)
        out = [v for v in out if _fold(v.language).startswith(want)]
    if gender:
        want = _fold(gender)
        out = [v for v in out if _fold(v.gender).startswith(want)]
    return out
