"""Withdrawal codes: six random words a reviewer writes down to take their review back.

The words come from the EFF's long word list (7,776 words, made for passphrases; by the
Electronic Frontier Foundation, CC BY 3.0 US), read from the copy the `xkcdpass` package
ships (BSD-3-Clause) rather than retyped. Codes are compared ignoring case, spaces,
hyphens and anything else that is not a letter; "yo-yo" and "yoyo" are then the same word,
so one of them is left out and codes are drawn from 7,775 words: 6 x log2(7775) = 77.5
bits. No word of the list is the beginning of another, so the letters alone still spell
exactly one sequence of words.

Only a keyed hash of a code is stored (HMAC-SHA256 under a key derived from the app
secret). A plain salted hash would add nothing here: with 77 bits of entropy the code
cannot be guessed, and the key keeps a stolen database from being checked against codes.
Changing SECRET_KEY makes every existing code stop working.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from functools import lru_cache
from importlib.resources import files

WORDS_PER_CODE = 6
EFF_LONG_WORDS = 7776
_NOT_LETTERS = re.compile(r"[^a-z]+")


class WordListMissing(RuntimeError):
    """The EFF word list is not where the xkcdpass package keeps it, or is not whole."""


@lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    """The EFF long list, one spelling per word once hyphens are ignored."""
    try:
        text = files("xkcdpass").joinpath("static/eff-long").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise WordListMissing("install xkcdpass (see requirements.txt)") from exc
    words = text.split()
    if len(words) != EFF_LONG_WORDS or len(set(words)) != EFF_LONG_WORDS:
        raise WordListMissing(f"expected {EFF_LONG_WORDS} distinct words, got {len(words)}")
    by_letters: dict[str, str] = {}
    for word in words:
        # Keep the unhyphenated spelling when two words differ only by a hyphen.
        by_letters.setdefault(normalise(word), word)
        if "-" not in word:
            by_letters[normalise(word)] = word
    return tuple(sorted(by_letters.values()))


def new_code() -> str:
    """A fresh code: six words from the list, chosen by the operating system's CSPRNG."""
    words = word_list()
    return " ".join(secrets.choice(words) for _ in range(WORDS_PER_CODE))


def normalise(code: str) -> str:
    """The letters of a code in lower case: case, spaces, hyphens and dots do not matter."""
    return _NOT_LETTERS.sub("", code.lower())


def _hash_key(app_secret: str) -> bytes:
    """A key for code hashes only, so no other use of the app secret shares it."""
    return hmac.new(app_secret.encode(), b"caremap withdrawal codes v1", hashlib.sha256).digest()


def code_hash(code: str, app_secret: str) -> str:
    """The keyed hash stored in place of a code (64 hex characters)."""
    return hmac.new(_hash_key(app_secret), normalise(code).encode(), hashlib.sha256).hexdigest()
