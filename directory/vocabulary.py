"""The controlled vocabulary: modalities, specialties, languages and insurers, read from vocabulary.json."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("modality", "specialty", "language", "insurance")
DATA_FILE = Path(__file__).with_name("vocabulary.json")


@dataclass(frozen=True)
class Term:
    """One vocabulary entry: a stable slug, the name people read, and other names it goes by."""

    kind: str
    slug: str
    name: str
    synonyms: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """JSON form for the API."""
        return {"slug": self.slug, "name": self.name, "synonyms": list(self.synonyms)}


def _key(text: str) -> str:
    # "Emotionally-Focused  Therapy" and "emotionally focused therapy" are the same term.
    return re.sub(r"[\s_\-]+", " ", text.strip().casefold())


class Vocabulary:
    """Terms by kind and slug, with lookup by any of a term's names."""

    def __init__(self, data: dict[str, list[dict[str, object]]]) -> None:
        self.terms: dict[str, dict[str, Term]] = {}
        self._by_name: dict[str, dict[str, str]] = {}
        for kind in KINDS:
            terms = [
                Term(kind, str(t["slug"]), str(t["name"]), tuple(str(s) for s in t.get("synonyms", [])))  # type: ignore[union-attr]
                for t in data[kind]
            ]
            self.terms[kind] = {t.slug: t for t in terms}
            names: dict[str, str] = {}
            for t in terms:
                for name in (t.slug, t.name, *t.synonyms):
                    names.setdefault(_key(name), t.slug)
            self._by_name[kind] = names

    def get(self, kind: str, slug: str) -> Term | None:
        """The term with this slug, or None."""
        return self.terms[kind].get(slug)

    def slugs(self, kind: str) -> list[str]:
        """Slugs of one kind, in file order."""
        return list(self.terms[kind])

    def resolve(self, kind: str, text: str) -> str | None:
        """The slug that a slug, name or synonym (any case) stands for, or None."""
        return self._by_name[kind].get(_key(text))

    def closest(self, kind: str, text: str) -> str | None:
        """The known name closest to a term that did not resolve, for "did you mean" messages."""
        match = difflib.get_close_matches(_key(text), list(self._by_name[kind]), n=1, cutoff=0.5)
        return match[0] if match else None

    def search_text(self, kind: str, slug: str) -> str:
        """All the words a term can be found by in free text: slug, name and synonyms."""
        term = self.terms[kind][slug]
        return " ".join((term.slug.replace("-", " "), term.name, *term.synonyms))


def load(path: Path = DATA_FILE) -> Vocabulary:
    """Read the vocabulary data file."""
    return Vocabulary(json.loads(path.read_text(encoding="utf-8")))


vocabulary = load()
