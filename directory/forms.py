"""Forms: the search, read from the URL so a search can be bookmarked and shared."""

from __future__ import annotations

import math

from flask_babel import gettext
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FloatField,
    IntegerField,
    SelectChoice,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import AnyOf, Length, NumberRange, Optional, ValidationError

from directory.geo import round_coordinate
from directory.i18n import N_
from directory.search import MAX_PAGE, SORTS, SearchQuery
from directory.taxonomy import COST_FILTERS, HOURS_FILTERS, LANGUAGES, SERVICES

NEAR_MAX = 200

# One friendly sentence per field, shown instead of WTForms' technical messages.
FRIENDLY_ERRORS: dict[str, str] = {
    "near": N_("That place name is too long. Type a ZIP code (like 10011) or a neighbourhood "
               "name (like Mott Haven)."),
    "lat": N_("Your location did not come through right. Try a ZIP code or a neighbourhood "
              "name instead."),
    "lng": N_("Your location did not come through right. Try a ZIP code or a neighbourhood "
              "name instead."),
    "cost": N_("One of the cost choices in this link is not one we know. Choose again below."),
    "lang": N_("One of the languages in this link is not one we know. Choose again below."),
    "service": N_("One of the services in this link is not one we know. Choose again below."),
    "hours": N_("One of the opening-hours choices in this link is not one we know. Choose "
                "again below."),
    "walk_in": N_("The walk-in choice in this link did not make sense. Choose again below."),
    "no_id": N_("The ID choice in this link did not make sense. Choose again below."),
    "rated": N_("The “well rated” choice in this link did not make sense. Choose again "
                "below."),
    "sort": N_("The order asked for in this link is not one we know. Choose again below."),
    "page": N_("That page of results does not exist. Start again from the first page."),
    "tiles": N_("The map setting in this link did not make sense."),
}


def _finite(form: FlaskForm, field: FloatField) -> None:
    """Reject NaN and infinity, which pass a range check."""
    if field.data is not None and not math.isfinite(field.data):
        raise ValidationError("not a number")


def _choices(labels: dict[str, str]) -> list[SelectChoice]:
    """Taxonomy codes as the only values a filter accepts."""
    return [SelectChoice(code, label) for code, label in labels.items()]


class SearchForm(FlaskForm):
    """The search, from the URL's query string (`near`, `lat`, `lng`, filters, `page`)."""

    # A GET form changes nothing, and a CSRF token would put a secret into shared URLs.
    class Meta:
        csrf = False

    near = StringField("ZIP code or neighbourhood", validators=[Length(max=NEAR_MAX)])
    lat = FloatField(validators=[Optional(), NumberRange(-90, 90), _finite])
    lng = FloatField(validators=[Optional(), NumberRange(-180, 180), _finite])
    cost = SelectMultipleField("Cost", choices=_choices(COST_FILTERS))
    lang = SelectMultipleField("Languages spoken", choices=_choices(LANGUAGES))
    service = SelectMultipleField("Services", choices=_choices(SERVICES))
    hours = SelectMultipleField("Opening hours", choices=_choices(HOURS_FILTERS))
    walk_in = BooleanField("Walk-in (no appointment)")
    no_id = BooleanField("No ID needed")
    rated = BooleanField("Well rated")
    # "distance" (nearest first, the default) or "score" (best rated first).
    sort = StringField(validators=[Optional(), AnyOf(list(SORTS))])
    page = IntegerField(validators=[Optional(), NumberRange(1, MAX_PAGE)])
    # "off" hides the map's images (tiles): see public.results.
    tiles = StringField(validators=[Optional(), AnyOf(["on", "off"])])

    def friendly_errors(self) -> list[str]:
        """The errors as sentences for a person, one per field, without repeats."""
        messages: list[str] = []
        for name in self.errors:
            message = gettext(FRIENDLY_ERRORS.get(name, N_("Something in this search link did "
                                                           "not work.")))
            if message not in messages:
                messages.append(message)
        return messages

    def selected(self, name: str) -> list[str]:
        """The values of a multiple-choice filter, safe to read even after a failed parse."""
        data = self[name].data
        return [value for value in (data or []) if isinstance(value, str)]

    def to_query(self) -> SearchQuery:
        """The validated search; coordinates rounded again to 2 decimals (about 1 km)."""
        lat, lng = self.lat.data, self.lng.data
        return SearchQuery(
            near=(self.near.data or "").strip(),
            lat=round_coordinate(lat) if lat is not None else None,
            lng=round_coordinate(lng) if lng is not None else None,
            cost=tuple(dict.fromkeys(self.selected("cost"))),
            lang=tuple(dict.fromkeys(self.selected("lang"))),
            service=tuple(dict.fromkeys(self.selected("service"))),
            hours=tuple(dict.fromkeys(self.selected("hours"))),
            walk_in=bool(self.walk_in.data),
            no_id=bool(self.no_id.data),
            rated=bool(self.rated.data),
            sort=self.sort.data or "distance",
            page=self.page.data or 1,
        )

    @property
    def tiles_off(self) -> bool:
        """Whether the person asked to hide the map's images."""
        return bool(self.tiles.data == "off")
