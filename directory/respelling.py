"""What counts as a respelling of a typed word: the one edit bound behind every "did you mean", search's respelled
text (search/text.py) and the vocabulary's nearest term (vocabulary.py) alike."""

from __future__ import annotations

from rapidfuzz.distance import OSA


def allowed_edits(word: str) -> int:
    """Edits a typed word may be from a known one (a swap of neighbours counts as one): none in a word of up to two
    letters, one up to five, two beyond, as Elasticsearch's AUTO fuzziness."""
    # With two edits for five letters, "women" became "bowen".
    return 0 if len(word) < 3 else 1 if len(word) <= 5 else 2


def is_respelling(typed: str, known: str) -> bool:
    """Whether `known` is `typed` respelled: each word within its allowed edits of the word in its place, or the
    whole, read as one word, within the edits of its length (words run together or split: "psycho dynamic")."""
    if OSA.distance(typed, known) <= allowed_edits(typed):
        return True
    typed_words, known_words = typed.split(), known.split()
    return len(typed_words) == len(known_words) and all(
        OSA.distance(t, k) <= allowed_edits(t) for t, k in zip(typed_words, known_words, strict=True))


def reach(typed: str) -> int:
    """The most edits a respelling of `typed` can hold in all: a cutoff for scanning many known spellings at once."""
    return max(allowed_edits(typed), sum(allowed_edits(word) for word in typed.split()))
