"""The controlled vocabulary: modalities, specialties, languages, insurers, the ages and client types a therapist
sees, the communities their practice affirms and their gender, read from vocabulary.json, and the one matcher that
turns the ways people write a term into its slug."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import OSA

from directory.respelling import is_respelling, reach

KINDS = ("modality", "specialty", "language", "insurance", "age", "client_type", "community", "gender")
DATA_FILE = Path(__file__).with_name("vocabulary.json")

# Only a parenthesis of capitals and digits is an abbreviation, dropped or used alone: "(IFS)", "(CBT)". One that
# carries meaning stays part of the name, so "Blue Cross (Canada)" never shortens to the US-sounding "Blue Cross".
_ABBREVIATION = re.compile(r"\s*\(([A-Z][A-Z0-9-]*)\)\s*")
# A trailing word that names the kind of help rather than the term: "EMDR therapy", "Grief counseling".
_GENERIC_TAIL = frozenset({"therapy", "psychotherapy", "treatment", "counseling"})
_FILLERS = frozenset({"and"})  # "Trauma & PTSD", "Trauma and PTSD" and "Trauma PTSD" are one name


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


class TermError(ValueError):
    """A value that names no term, or more than one; the message says which and what was probably meant."""


def _singular(word: str) -> str:
    # Enough English plurals for vocabulary names ("issues", "therapies", "adolescents"), and never "stress" or
    # "analysis"; abbreviations are short and stay as they are.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _alternatives(name: str) -> list[str]:
    """The ways a name is written: whole, without its abbreviation, the abbreviation alone, each " / " part."""
    forms = [name]
    found = _ABBREVIATION.search(name)
    if found:
        forms += [_ABBREVIATION.sub(" ", name).strip(), found.group(1)]
    return forms + [part for form in forms if " / " in form for part in form.split(" / ")]


class Spelling:
    """Folds a written name to a key: case, accents, punctuation, spacing, `&`, plurals and British spellings."""

    def __init__(self, british_to_american: dict[str, str]) -> None:
        self.american = british_to_american

    def _word(self, word: str) -> str:
        word = self.american.get(word, word)
        if word.endswith("isation") or word.endswith("isations"):  # mentalisation, organisations: always -ization
            word = word.replace("isation", "ization")
        return _singular(word)

    def key(self, text: str) -> str:
        """The form two spellings of one name share."""
        plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
        plain = plain.replace("'", "").replace("\u2019", "").replace("&", " and ")
        return " ".join(self._word(w) for w in re.findall(r"[a-z0-9]+", plain) if w not in _FILLERS)

    def loose_key(self, key: str) -> str:
        """The key without a trailing generic word ("EMDR therapy" → "emdr"), or the key itself."""
        words = key.split(" ")
        return " ".join(words[:-1]) if len(words) > 1 and words[-1] in _GENERIC_TAIL else key


class Vocabulary:
    """Terms by kind and slug, matched from any of the ways a term is written."""

    def __init__(self, data: dict[str, object]) -> None:
        self.spelling = Spelling(dict(data.get("spellings", {})))  # type: ignore[call-overload]
        self.terms: dict[str, dict[str, Term]] = {}
        self._by_key: dict[str, dict[str, list[str]]] = {}
        for kind in KINDS:
            terms = [
                Term(kind, str(t["slug"]), str(t["name"]), tuple(str(s) for s in t.get("synonyms", [])))
                for t in data[kind]  # type: ignore[attr-defined]
            ]
            self.terms[kind] = {t.slug: t for t in terms}
            keys: dict[str, list[str]] = {}
            for term in terms:
                for written in (term.slug, term.name, *term.synonyms):
                    for form in _alternatives(written):
                        key = self.spelling.key(form)
                        for k in {key, self.spelling.loose_key(key)}:
                            if k and term.slug not in keys.setdefault(k, []):
                                keys[k].append(term.slug)
            self._by_key[kind] = keys
        self._unsaid = {self.spelling.key(text) for text in data.get("gender_not_said", [])}  # type: ignore[attr-defined]

    def get(self, kind: str, slug: str) -> Term | None:
        """The term with this slug, or None."""
        return self.terms[kind].get(slug)

    def slugs(self, kind: str) -> list[str]:
        """Slugs of one kind, in file order."""
        return list(self.terms[kind])

    def says_nothing(self, text: str) -> bool:
        """Whether a gender value declines to say one ("prefer not to say", "n/a"): the same as leaving it blank."""
        return self.spelling.key(text) in self._unsaid

    def ambiguous_keys(self, kind: str) -> dict[str, list[str]]:
        """Keys that stand for more than one term: a value written so is an error naming them all."""
        return {key: slugs for key, slugs in self._by_key[kind].items() if len(slugs) > 1}

    def _lookup(self, kind: str, text: str) -> tuple[str, ...]:
        keys = self._by_key[kind]
        key = self.spelling.key(text)
        return tuple(keys.get(key) or keys.get(self.spelling.loose_key(key)) or ())

    # An import asks the same few hundred spellings millions of times; folding one costs about 3 µs.
    @functools.lru_cache(maxsize=4096)  # noqa: B019 (one instance, `vocabulary`, lives as long as the process)
    def match(self, kind: str, text: str) -> tuple[str, ...]:
        """Every slug that `text` names: none, one, or several when it is ambiguous."""
        found = self._lookup(kind, text)
        abbreviation = _ABBREVIATION.search(text)
        if found or not abbreviation:
            return found
        # "Interpersonal psychotherapy (IPT)": the name decides, and the user's abbreviation must not contradict it.
        named = self._lookup(kind, _ABBREVIATION.sub(" ", text))
        short = self._lookup(kind, abbreviation.group(1))
        return named if not short or short == named else tuple(dict.fromkeys(named + short))

    def resolve(self, kind: str, text: str) -> str:
        """The one slug `text` names; raises TermError naming the candidates or the closest known term."""
        found = self.match(kind, text)
        shown = text.strip()[:60]
        if len(found) == 1:
            return found[0]
        if found:
            names = " and ".join(f"{self.terms[kind][s].name!r} ({s})" for s in found)
            raise TermError(f"{kind} {shown!r} could mean {names}; write the one you mean")
        closest = self.closest(kind, text)
        hint = f"; did you mean {closest.name!r} ({closest.slug})?" if closest else ""
        raise TermError(f"unknown {kind} {shown!r}{hint}")

    def closest(self, kind: str, text: str) -> Term | None:
        """The term a value that named none is a respelling of (see directory.respelling), the fewest edits away,
        for "did you mean" messages; None when it is none's, rather than a different term that looks alike."""
        # RapidFuzz scans every key in C++ (a scan in Python took 2 ms a value, which made a file of distinct
        # unknown terms take 8 minutes to validate); only the few within reach are checked word by word, about
        # 35 µs a value in all. Ties go to the first key in file order.
        keys = self._by_key[kind]
        typed = self.spelling.key(text)
        near = process.extract(typed, list(keys), scorer=OSA.distance, score_cutoff=reach(typed), limit=None)
        for key, _, _ in sorted(near, key=lambda found: (found[1], found[2])):
            if is_respelling(typed, key):
                return self.terms[kind][keys[key][0]]
        return None

    def search_text(self, kind: str, slug: str) -> str:
        """All the words a term can be found by in free text: slug, name and synonyms."""
        term = self.terms[kind][slug]
        return " ".join((term.slug.replace("-", " "), term.name, *term.synonyms))


def load(path: Path = DATA_FILE) -> Vocabulary:
    """Read the vocabulary data file."""
    return Vocabulary(json.loads(path.read_text(encoding="utf-8")))


vocabulary = load()
