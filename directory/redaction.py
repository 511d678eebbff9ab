"""Help moderators spot and blank out what could identify someone in a review's text.

`find_flags` marks phone numbers, emails, URLs, online handles, street addresses and
capitalised names. It is a helper for a person, not a filter: it errs towards flagging
(a moderator unticks a false alarm in a second) and it misses things a person will see,
listed in MISSES below. Nothing here decides; the moderator does.

Found (tested in tests/test_redaction.py):
- US phone numbers: (212) 555-0100, 212-555-0100, 212.555.0100, +1 212 555 0100,
  2125550100, and 7-digit 555-0100 (a separator is needed there).
- Emails (name@host.tld); URLs starting http://, https:// or www.; bare domains with a
  common ending (.com, .org, .net, .nyc…); @handles.
- Street addresses: a house number, an optional direction, a street name and a street
  word ("123 Main St", "45-10 Queens Blvd", "210 W 125th Street", "1 Broadway");
  "Apt 4B" / "Unit 3"; a capitalised street name without number ("on Main Street").
- Names: runs of capitalised words ("Maria Lopez"), a capitalised word inside a sentence
  ("the nurse Maria"), and a title with a name ("Dr. Smith", "Nurse Kay").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

REMOVED = "[removed]"

MISSES = (
    "a single name that starts a sentence ('Maria was kind.'), since any sentence starts so",
    "names written in lower case ('maria at the desk') or all in capitals ('MARIA')",
    "names that are also places, months or words we skip ('Chelsea', 'August', 'Jamaica')",
    "descriptions that identify without a name ('the tall nurse with red hair on Tuesdays')",
    "spelled-out or disguised numbers and emails ('two one two…', 'maria at gmail dot com')",
    "cross streets and landmarks ('the corner of 14th and 8th', 'next to the Duane Reade')",
    "phone numbers outside the North American format, ZIP codes, dates and ages",
)

# What each kind is called on the moderator's page.
KIND_LABELS: dict[str, str] = {
    "email": "email",
    "url": "web address",
    "phone": "phone number",
    "address": "street address",
    "handle": "online handle",
    "name": "name",
}
# When two flags overlap, the earlier one wins; at the same start, this order.
_PRIORITY = {"email": 0, "url": 1, "phone": 2, "address": 3, "handle": 4, "name": 5}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"']+")
_DOMAIN = re.compile(
    r"(?i)\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io|nyc|info|me|co|us|app|ly"
    r"|biz|tv|xyz|site|online)\b(?:/[^\s<>\"']*)?"
)
_PHONE = re.compile(
    r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}(?!\w)"
    r"|(?<![\w.-])\d{3}[.-]\d{4}(?![\w-])"
)
_HANDLE = re.compile(r"(?<![\w@.])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?")
_STREET_TYPES = (
    r"street|st|avenue|ave|av|road|rd|boulevard|blvd|place|pl|lane|ln|drive|dr|parkway|pkwy"
    r"|court|ct|terrace|ter|way|square|sq|plaza|highway|hwy|expressway|expy|turnpike|tpke"
)
_ADDRESS = re.compile(
    r"\b\d{1,5}(?:-\d{1,4})?[A-Za-z]?\s+"  # house number, Queens style "45-10" too
    r"(?:(?i:[NSEW]\.?|north|south|east|west)\s+)?"  # direction
    r"(?:"
    r"(?i:broadway|bowery)\b"  # streets named without a street word
    # The street name's first word ("125th", "Main", "main"); only a capitalised word may
    # end in a dot ("St. Marks"), so "45 minutes. Dr. Smith" is no address.
    r"|(?:\d{1,3}(?i:st|nd|rd|th)|[A-Z][A-Za-z'-]*\.?|[a-z][A-Za-z'-]*)"
    # More capitalised words, as few as will do: "45 Main Street. Ask Dr. Olsen" ends at
    # "Street." rather than at "Dr." (a street type too), which hid the name behind it.
    r"(?:[ \t]+[A-Z][A-Za-z'-]*\.?){0,2}?"
    rf"[ \t]+(?i:{_STREET_TYPES})\b\.?"
    r")"
)
_UNIT = re.compile(r"(?i)\b(?:apt|apartment|unit)\.?\s*#?\s*\d+[a-z]?\b")
_STREET_WORD = re.compile(rf"(?i)(?:{_STREET_TYPES})\.?")

# A capitalised word: "Maria", "McDonald", "O'Brien", "Mary-Jane". All-capitals words
# (HIV, PEP) and inner capitals (PrEP) are not names.
_CAPWORD = r"(?:Mc|Mac|O['’])?[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*"
_TITLE = r"(?:(?:Dr|Mr|Mrs|Ms|Mx|Prof)\.?|Doctor|Nurse|Miss)(?![a-z])"
_NAME_RUN = re.compile(
    rf"(?<![\w'’-])(?:(?:{_TITLE}|{_CAPWORD})[ \t]+)*{_CAPWORD}(?![\w'’-])"
)
_WORD = re.compile(rf"(?:{_TITLE})|{_CAPWORD}")
_TITLES = {"dr", "dr.", "mr", "mr.", "mrs", "mrs.", "ms", "ms.", "mx", "mx.", "prof", "prof.",
           "doctor", "nurse", "miss"}

# Words that start sentences or are capitalised for other reasons than being a name.
_COMMON = frozenset({
    "a", "about", "after", "again", "all", "also", "always", "an", "and", "another", "any",
    "anyway", "are", "as", "at", "be", "because", "been", "before", "being", "best", "but",
    "by", "can", "could", "did", "didn't", "do", "does", "doesn't", "don't", "during", "each",
    "even", "ever", "every", "everybody", "everyone", "everything", "first", "for", "from",
    "general", "good", "great", "had", "has", "have", "he", "her", "here", "hers", "him",
    "his", "honestly", "how", "however", "i", "i'd", "i'll", "i'm", "i've", "if", "in", "is",
    "isn't", "it", "it's", "its", "just", "last", "let", "like", "lots", "maybe", "me", "mine",
    "more", "most", "much", "my", "never", "next", "no", "nobody", "none", "not", "nothing",
    "now", "of", "ok", "okay", "on", "once", "one", "only", "or", "other", "our", "overall",
    "people", "please", "pretty", "really", "same", "she", "should", "since", "so", "some",
    "someone", "something", "sometimes", "staff", "still", "such", "super", "than", "thank",
    "thanks", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "though", "through", "to", "too", "two", "very", "was", "wasn't", "we", "went",
    "were", "what", "when", "where", "which", "while", "who", "why", "will", "with", "without",
    "would", "wow", "yes", "yet", "you", "your", "hi", "hello", "hey", "dear", "sadly",
    "luckily", "unfortunately", "definitely", "totally",
})
# Capitalised words that are not people: days, months, places, languages, health words.
# April, May and June are left out: they are names often enough to be worth a flag.
_NOT_NAMES = frozenset({
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january",
    "february", "march", "july", "august", "september", "october", "november", "december",
    "new", "york", "nyc", "city", "manhattan", "brooklyn", "queens", "bronx", "staten",
    "island", "harlem", "village", "chelsea", "soho", "tribeca", "midtown", "downtown",
    "uptown", "lower", "upper", "east", "west", "north", "south", "jamaica", "flushing",
    "astoria", "bushwick", "williamsburg", "washington", "heights", "inwood", "english",
    "spanish", "chinese", "mandarin", "cantonese", "russian", "french", "haitian", "creole",
    "korean", "arabic", "bengali", "polish", "portuguese", "italian", "hindi", "urdu",
    "yiddish", "tagalog", "japanese", "american", "asian", "black", "latina", "latino",
    "latinx", "trans", "nonbinary", "queer", "gay", "lesbian", "bi", "medicaid", "medicare",
    "covid", "truvada", "descovy", "apretude", "narcan", "plan", "planned", "parenthood",
    "god", "internet", "google", "instagram", "facebook", "whatsapp", "clinic", "center",
    "centre", "hospital", "health", "department", "pharmacy",
})


@dataclass(frozen=True)
class Flag:
    """One flagged part of a text: characters [start, end) and what it looks like."""

    start: int
    end: int
    kind: str

    def text_in(self, text: str) -> str:
        """The flagged characters of this text."""
        return text[self.start:self.end]

    @property
    def label(self) -> str:
        """What the kind is called on the page."""
        return KIND_LABELS[self.kind]


@dataclass(frozen=True)
class Segment:
    """A piece of text for the template: flagged (kind set) or not (kind None)."""

    text: str
    kind: str | None = None

    @property
    def label(self) -> str:
        """What the kind is called on the page, or ""."""
        return KIND_LABELS.get(self.kind or "", "")


class NotARedaction(ValueError):
    """An edited text that is not the original with parts replaced by [removed]."""


def normalise(text: str) -> str:
    """One line ending (browsers send CRLF from a textarea) and no outer white space."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def find_flags(text: str, ignore: Iterable[str] = ()) -> list[Flag]:
    """Every part of the text that may identify someone, in order, never overlapping.

    `ignore` holds words that are not names here (e.g. the clinic's own name).
    """
    ignored = {word.lower() for phrase in ignore for word in re.findall(r"[\w'’-]+", phrase)}
    found: list[Flag] = []
    for kind, pattern in (("email", _EMAIL), ("url", _URL), ("url", _DOMAIN),
                          ("phone", _PHONE), ("address", _ADDRESS), ("address", _UNIT),
                          ("handle", _HANDLE)):
        for match in pattern.finditer(text):
            start, end = match.start(), _trim_end(text, match.start(), match.end())
            if end > start:
                found.append(Flag(start, end, kind))
    found.extend(_name_flags(text, ignored))
    return _without_overlaps(found)


def _trim_end(text: str, start: int, end: int) -> int:
    """Leave trailing punctuation out of a URL or handle ("see www.x.com.")."""
    while end > start and text[end - 1] in ".,;:!?)]}\"'’":
        if text[end - 1] == "." and _STREET_WORD.fullmatch(text[start:end].split()[-1]):
            break  # "St." keeps its dot
        end -= 1
    return end


def _name_flags(text: str, ignored: set[str]) -> list[Flag]:
    """Capitalised names: runs of capitalised words, less common words and places."""
    flags: list[Flag] = []
    for run in _NAME_RUN.finditer(text):
        words = [(m.start() + run.start(), m.end() + run.start(), m.group())
                 for m in _WORD.finditer(run.group())]
        titled: list[tuple[int, int, str]] = []
        for index, word in enumerate(words[:-1]):
            if word[2].lower() in _TITLES:
                # "Dr. Smith", "Nurse Kay": a title makes the words after it a name.
                words, titled = words[:index], words[index:]
                break
        if titled:
            flags.append(Flag(titled[0][0], titled[-1][1], "name"))
        at_sentence_start = _starts_sentence(text, run.start())
        while words and _plain(words[0][2]) in _COMMON:
            words.pop(0)
        for piece in _split_known(words, ignored):
            single_opener = len(piece) == 1 and piece[0][0] == run.start()
            if (single_opener and at_sentence_start) or _plain(piece[0][2]) in _TITLES:
                continue  # Any sentence starts with a capital; a lone title names no one.
            kind = "address" if _STREET_WORD.fullmatch(piece[-1][2]) else "name"
            if kind == "address" and len(piece) == 1:
                continue
            flags.append(Flag(piece[0][0], piece[-1][1], kind))
    return flags


def _plain(word: str) -> str:
    """A word as the word lists hold it: lower case, straight apostrophe."""
    return word.lower().replace("’", "'")


def _starts_sentence(text: str, index: int) -> bool:
    """Whether the word at this index is the first of a sentence, line or text."""
    before = text[:index].rstrip(" \t\"'“”‘’([")
    return not before or before[-1] in ".!?:\n"


def _split_known(
    words: list[tuple[int, int, str]], ignored: set[str]
) -> list[list[tuple[int, int, str]]]:
    """Split a run of words at the ones that are not names (places, days, the clinic)."""
    pieces: list[list[tuple[int, int, str]]] = [[]]
    for word in words:
        lower = _plain(word[2])
        singular = lower[:-1] if lower.endswith("s") else lower  # "Tuesdays", "Mondays"
        if {lower, singular} & (_NOT_NAMES | ignored | _COMMON):
            pieces.append([])
        else:
            pieces[-1].append(word)
    return [piece for piece in pieces if piece]


def _without_overlaps(flags: list[Flag]) -> list[Flag]:
    """Keep the earliest flag where two overlap (at the same start, by kind, then longest)."""
    kept: list[Flag] = []
    for flag in sorted(flags, key=lambda f: (f.start, _PRIORITY[f.kind], -f.end)):
        if kept and flag.start < kept[-1].end:
            continue
        kept.append(flag)
    return kept


def segments(text: str, flags: Iterable[Flag]) -> list[Segment]:
    """The text cut into plain and flagged pieces, for a template to escape one by one."""
    pieces: list[Segment] = []
    position = 0
    for flag in sorted(flags, key=lambda f: f.start):
        if flag.start < position:
            continue
        if flag.start > position:
            pieces.append(Segment(text[position:flag.start]))
        pieces.append(Segment(text[flag.start:flag.end], flag.kind))
        position = flag.end
    if position < len(text):
        pieces.append(Segment(text[position:]))
    return pieces


def blank(text: str, flags: Iterable[Flag]) -> str:
    """The text with each chosen flag's characters replaced by [removed]."""
    return "".join(
        REMOVED if segment.kind else segment.text for segment in segments(text, flags)
    )


def check_redaction(original: str, edited: str) -> str:
    """The edited text if it is the original with parts replaced by [removed], else raise.

    A moderator may only take words out, never put words in a reviewer's mouth. Both
    texts are compared after `normalise`, and the normalised edit is returned.
    """
    original, edited = normalise(original), normalise(edited)
    pieces = edited.split(REMOVED)
    if len(pieces) == 1:
        if edited != original:
            raise NotARedaction("only [removed] may replace words")
        return edited
    first, *middle, last = pieces
    if not original.startswith(first) or not original.endswith(last):
        raise NotARedaction("the text was changed outside the [removed] parts")
    # Leftmost matching leaves the most room for the pieces after; it is also linear,
    # unlike a regular expression with one lazy group per [removed].
    position = len(first)
    end = len(original) - len(last)
    for piece in middle:
        found = original.find(piece, position, end)
        if found < 0:
            raise NotARedaction("the text was changed outside the [removed] parts")
        position = found + len(piece)
    if position > end:
        raise NotARedaction("the text was changed outside the [removed] parts")
    return edited


def removed_count(original: str, redacted: str) -> int:
    """How many [removed] marks the redaction added."""
    return max(redacted.count(REMOVED) - original.count(REMOVED), 0)
