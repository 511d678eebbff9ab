"""The words the directory filters on: service codes, payment options, documents, languages.

Codes are stable (they appear in URLs and, later, in exports); labels are for people.
"""

from __future__ import annotations

SERVICES: dict[str, str] = {
    "sti_testing": "STI testing",
    "hiv_testing": "HIV testing",
    "prep": "PrEP (HIV prevention pill)",
    "pep": "PEP (emergency HIV prevention)",
    "trans_care": "Trans and gender-affirming care",
    "harm_reduction": "Harm reduction and syringe services",
    "mental_health": "Mental health",
    "reproductive": "Reproductive care",
    "primary_care": "Primary care",
    "vaccines": "Vaccines",
    "condoms": "Free condoms and lube",
}

# Cost filter values in the URL (`cost=`), as people think of them.
COST_FILTERS: dict[str, str] = {
    "free": "Free",
    "sliding": "Sliding scale",
    "no_insurance": "No insurance needed",
    "medicaid": "Medicaid accepted",
}

# Payment options stored in cost_option.option.
COST_OPTIONS: dict[str, str] = {
    "free": "Free",
    "low_cost": "Low cost",
    "sliding_fee": "Sliding-scale fee",
    "medicaid": "Medicaid accepted",
    "medicare": "Medicare accepted",
}

# Documents stored in required_document.document.
DOCUMENTS: dict[str, str] = {
    "id": "Photo or personal ID",
    "insurance": "Insurance card",
    "income": "Proof of income",
    "address": "Proof of address",
}

HOURS_FILTERS: dict[str, str] = {
    "open_now": "Open now",
    "evening": "Evenings (after 5 pm)",
    "weekend": "Weekends",
}

# Language names as written in the sources, mapped to ISO 639 codes.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "es": "Spanish",
    "zh": "Chinese",
    "ru": "Russian",
    "ht": "Haitian Creole",
    "bn": "Bengali",
    "fr": "French",
    "ar": "Arabic",
    "ko": "Korean",
    "hi": "Hindi",
    "ur": "Urdu",
    "pl": "Polish",
    "yi": "Yiddish",
    "it": "Italian",
    "pt": "Portuguese",
    "ja": "Japanese",
    "tl": "Tagalog",
    "el": "Greek",
    "he": "Hebrew",
    "pa": "Punjabi",
    "vi": "Vietnamese",
    "sq": "Albanian",
    "wo": "Wolof",
    "bm": "Bambara",
    "am": "Amharic",
    "dyu": "Jula",
    "de": "German",
    "asl": "American Sign Language",
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
