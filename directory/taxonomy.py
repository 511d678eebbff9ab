"""The words the directory filters on: service codes, payment options, documents, languages.

Codes are stable (they appear in URLs and, later, in exports); labels are for people.
"""

from __future__ import annotations

from directory.i18n import N_  # labels stay English here; pages translate them when shown

SERVICES: dict[str, str] = {
    "sti_testing": N_("STI testing"),
    "hiv_testing": N_("HIV testing"),
    "prep": N_("PrEP (HIV prevention pill)"),
    "pep": N_("PEP (emergency HIV prevention)"),
    "trans_care": N_("Trans and gender-affirming care"),
    "harm_reduction": N_("Harm reduction and syringe services"),
    "mental_health": N_("Mental health"),
    "reproductive": N_("Reproductive care"),
    "primary_care": N_("Primary care"),
    "vaccines": N_("Vaccines"),
    "condoms": N_("Free condoms and lube"),
}

# Cost filter values in the URL (`cost=`), as people think of them.
COST_FILTERS: dict[str, str] = {
    "free": N_("Free"),
    "sliding": N_("Sliding scale"),
    "no_insurance": N_("No insurance needed"),
    "medicaid": N_("Medicaid accepted"),
}

# Payment options stored in cost_option.option.
COST_OPTIONS: dict[str, str] = {
    "free": N_("Free"),
    "low_cost": N_("Low cost"),
    "sliding_fee": N_("Sliding-scale fee"),
    "medicaid": N_("Medicaid accepted"),
    "medicare": N_("Medicare accepted"),
}

# Documents stored in required_document.document.
DOCUMENTS: dict[str, str] = {
    "id": N_("Photo or personal ID"),
    "insurance": N_("Insurance card"),
    "income": N_("Proof of income"),
    "address": N_("Proof of address"),
}

HOURS_FILTERS: dict[str, str] = {
    "open_now": N_("Open now"),
    "evening": N_("Evenings (after 5 pm)"),
    "weekend": N_("Weekends"),
}

# Language names as written in the sources, mapped to ISO 639 codes.
LANGUAGES: dict[str, str] = {
    "en": N_("English"),
    "es": N_("Spanish"),
    "zh": N_("Chinese"),
    "ru": N_("Russian"),
    "ht": N_("Haitian Creole"),
    "bn": N_("Bengali"),
    "fr": N_("French"),
    "ar": N_("Arabic"),
    "ko": N_("Korean"),
    "hi": N_("Hindi"),
    "ur": N_("Urdu"),
    "pl": N_("Polish"),
    "yi": N_("Yiddish"),
    "it": N_("Italian"),
    "pt": N_("Portuguese"),
    "ja": N_("Japanese"),
    "tl": N_("Tagalog"),
    "el": N_("Greek"),
    "he": N_("Hebrew"),
    "pa": N_("Punjabi"),
    "vi": N_("Vietnamese"),
    "sq": N_("Albanian"),
    "wo": N_("Wolof"),
    "bm": N_("Bambara"),
    "am": N_("Amharic"),
    "dyu": N_("Jula"),
    "de": N_("German"),
    "asl": N_("American Sign Language"),
}

# Other spellings met in the sources.
LANGUAGE_ALIASES: dict[str, str] = {
    "mandarin": "zh",
    "cantonese": "zh",
    "chinese": "zh",
    "french creole": "ht",
    "creole": "ht",
    "haitian": "ht",
    "kreyol": "ht",
    "bangla": "bn",
    "sign language": "asl",
    "wulof": "wo",
    "dyula": "dyu",
    "asl": "asl",
}


def language_code(name: str) -> str | None:
    """The code for a language name as a source writes it, or None if we do not know it."""
    key = name.strip().lower()
    if key in LANGUAGE_ALIASES:
        return LANGUAGE_ALIASES[key]
    for code, label in LANGUAGES.items():
        if label.lower() == key:
            return code
    return None
