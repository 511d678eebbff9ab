"""The OpenAPI 3.1 document of the API, built from the code so the two cannot drift.

The search parameters come from the API's search form itself: each WTForms field becomes
a query parameter, its validators become the schema's limits and choices. Response
schemas are written here once and checked against real responses by schemathesis in the
test suite; a test also compares the paths with the routes the app registers.
"""

from __future__ import annotations

from typing import Any

from wtforms import (
    BooleanField,
    Field,
    FloatField,
    IntegerField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import AnyOf, Length, NumberRange

from directory import api

VERSION = "1.0.0"
NULL_STRING: dict[str, Any] = {"type": ["string", "null"]}

# What each search parameter means, for partners; the form gives its type and limits.
PARAMETER_DOCS: dict[str, str] = {
    "near": "A New York City ZIP code (10011) or neighbourhood name (Mott Haven): results "
            "are ordered by distance from it. See /neighbourhoods.",
    "lat": "Latitude of a point to search around, with lng; rounded to 2 decimals (about "
           "1 km) before use. Must be inside New York City.",
    "lng": "Longitude of a point to search around, with lat; rounded like lat.",
    "cost": "Cost filters (repeat the parameter for several; all must match).",
    "lang": "Language codes (see /languages); a clinic speaking any of them matches.",
    "service": "Service codes (see /services); a clinic must offer all of them.",
    "hours": "Opening-hours filters, in New York time.",
    "walk_in": "Only clinics a source says take walk-ins.",
    "no_id": "Only clinics a source says do not ask for ID.",
    "rated": "Only clinics with a published “no stink-eye” score that is well rated.",
    "sort": "distance (default: nearest first, or by name without a place) or score.",
    "page": "Page of results, from 1.",
    "per_page": "Clinics per page (default 20).",
    "modified_after": "Incremental sync: only listings changed after this RFC 3339 "
                      "date-time, including listings that closed (status closed).",
}


def _limits(field: Field, schema: dict[str, Any]) -> dict[str, Any]:
    for validator in field.validators:
        if isinstance(validator, NumberRange):
            if validator.min is not None:
                schema["minimum"] = validator.min
            if validator.max is not None:
                schema["maximum"] = validator.max
        elif isinstance(validator, Length) and validator.max not in (None, -1):
            schema["maxLength"] = validator.max
        elif isinstance(validator, AnyOf):
            schema["enum"] = list(validator.values)
    return schema


def _choice_value(choice: Any) -> str:
    return str(choice.value if hasattr(choice, "value") else choice[0])


def parameter_schema(field: Field) -> dict[str, Any]:
    """The JSON Schema of one form field as a query parameter."""
    if isinstance(field, SelectMultipleField):
        return {"type": "array", "items": {"type": "string",
                                           "enum": [_choice_value(c) for c in field.choices or []]}}
    if isinstance(field, BooleanField):
        return {"type": "boolean"}
    if isinstance(field, IntegerField):
        return _limits(field, {"type": "integer"})
    if isinstance(field, FloatField):
        return _limits(field, {"type": "number"})
    if isinstance(field, StringField):
        if field.name == "modified_after":
            return {"type": "string", "format": "date-time"}
        return _limits(field, {"type": "string"})
    raise TypeError(f"no OpenAPI schema for {type(field).__name__} {field.name}")


def search_parameters() -> list[dict[str, Any]]:
    """The /clinics query parameters, one per field of the API search form."""
    form = api.ApiSearchForm(formdata=None, meta={"csrf": False})
    out = []
    for field in form:
        parameter: dict[str, Any] = {
            "name": field.name, "in": "query", "required": False,
            "description": PARAMETER_DOCS.get(field.name, str(field.label.text)),
            "schema": parameter_schema(field),
        }
        if parameter["schema"]["type"] == "array":
            parameter.update(style="form", explode=True)
        out.append(parameter)
    return out


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required,
            "additionalProperties": False}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _schemas() -> dict[str, Any]:
    fact = _object({
        "label": {"type": "string"},
        "value": {"type": ["boolean", "null"],
                  "description": "true (yes), false (no) or null (not known yet)"},
        "context": NULL_STRING, "detail": NULL_STRING,
        "source": {**NULL_STRING, "description": "A key of the clinic's `sources`."},
        "verified_on": {"type": ["string", "null"], "format": "date"},
    })
    summary = {
        "id": {"type": "integer"},
        "slug": {"type": "string"},
        "hsds_id": {"type": "string", "format": "uuid",
                    "description": "The location's id in the HSDS export."},
        "name": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "closed"]},
        "category": NULL_STRING,
        "address": _object({"address_1": {"type": "string"}, "address_2": NULL_STRING,
                            "city": {"type": "string"}, "state": {"type": "string"},
                            "postal_code": {"type": "string"}, "borough": NULL_STRING,
                            "text": {"type": "string"}}),
        "latitude": {"type": "number"},
        "longitude": {"type": "number"},
        "coordinates_precision": {"type": "string", "enum": ["site", "zip"]},
        "phone": NULL_STRING,
        "website": NULL_STRING,
        "services": {"type": "array", "items": {"type": "string"}},
        "open_now": {"type": ["boolean", "null"],
                     "description": "null when no source gives the clinic's hours"},
        "distance_miles": {"type": ["number", "null"]},
        "moderator_checked": {"type": "boolean"},
        "modified_at": {"type": "string", "format": "date-time"},
        "score": {"oneOf": [{"type": "null"}, _ref("Score")]},
        "url": {"type": "string"},
        "api_url": {"type": "string"},
    }
    detail = {
        **summary,
        "organization": {"type": "string"},
        "transit": NULL_STRING,
        "languages": {"type": "array", "items": {"type": "string"}},
        "facts": _object({name: {"type": "array", "items": _ref("Fact")} for name in (
            "services", "costs", "documents", "walk_in", "telehealth", "languages")}),
        "hours": _object({
            "week": {"type": "array", "items": _object({
                "day": {"type": "string"}, "known": {"type": "boolean"},
                "intervals": {"type": "array", "items": {"type": "string"}}})},
            "fact": {"oneOf": [{"type": "null"}, _ref("Fact")]},
        }),
        "contact_sources": {"type": "object", "additionalProperties": _object({
            "source": {"type": "string"}, "verified_on": {"type": "string", "format": "date"},
            "note": NULL_STRING})},
        "oldest_verified": {"type": ["string", "null"], "format": "date"},
        "sources": {"type": "object", "additionalProperties": _object({
            "title": {"type": "string"}, "publisher": {"type": "string"},
            "url": NULL_STRING, "as_of": {"type": "string", "format": "date"},
            "licence": NULL_STRING})},
    }
    counted = _object({"code": {"type": "string"}, "label": {"type": "string"},
                       "clinics": {"type": "integer", "minimum": 0}})
    return {
        "Problem": _object({
            "type": {"type": "string"}, "title": {"type": "string"},
            "status": {"type": "integer"}, "detail": {"type": "string"},
            "errors": {"type": "array", "items": _object({
                "parameter": {"type": "string"}, "detail": {"type": "string"}})},
        }, required=["type", "title", "status", "detail"]),
        "Score": _object({"score": {"type": "number", "minimum": 1, "maximum": 5},
                          "review_count": {"type": "integer", "minimum": 1}}),
        "Fact": fact,
        "ClinicSummary": _object(summary),
        "ClinicDetail": _object(detail),
        "SearchPage": _object({
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1},
            "total": {"type": "integer", "minimum": 0,
                      "description": "Matches within radius_miles (the whole city if null)."},
            "has_prev": {"type": "boolean"}, "has_next": {"type": "boolean"},
            "radius_miles": {"type": ["number", "null"]},
            "place": {"oneOf": [{"type": "null"}, _object({
                "label": {"type": "string"}, "latitude": {"type": "number"},
                "longitude": {"type": "number"},
                "kind": {"type": "string", "enum": ["zip", "neighbourhood", "point"]}})]},
            "links": _object({"prev": NULL_STRING, "next": NULL_STRING}),
            "clinics": {"type": "array", "items": _ref("ClinicSummary")},
        }),
        "ServiceList": _object({"services": {"type": "array", "items": counted}}),
        "LanguageList": _object({"languages": {"type": "array", "items": counted}}),
        "NeighbourhoodList": _object({"neighbourhoods": {"type": "array", "items": _object({
            "code": {"type": "string"}, "name": {"type": "string"},
            "borough": {"type": "string"}, "latitude": {"type": "number"},
            "longitude": {"type": "number"}})}}),
        "Index": {"type": "object"},
        "HsdsPage": {"type": "object", "required": ["total_items", "contents"],
                     "properties": {"total_items": {"type": "integer"},
                                    "contents": {"type": "array",
                                                 "items": {"type": "object"}}}},
    }


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}


IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                 "description": "An ETag from an earlier answer: 304 if nothing changed.",
                 "schema": {"type": "string"}}
ETAG_HEADER = {"ETag": {"description": "Changes whenever the answer does.",
                        "schema": {"type": "string"}}}


def _json_operation(operation_id: str, summary: str, schema: str, *,
                    parameters: list[dict[str, Any]] | None = None, etag: bool = True,
                    extra: dict[str, Any] | None = None,
                    description: str = "") -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK",
                "content": {"application/json": {"schema": _ref(schema)}},
                **({"headers": ETAG_HEADER} if etag else {})},
        "400": _problem("A parameter is malformed or not one this operation takes."),
        "429": _problem("Too many requests; slow down."),
        "500": _problem("A fault on our side."),
    }
    if etag:
        responses["304"] = {"description": "Not modified since the ETag given."}
    responses.update(extra or {})
    return {"operationId": operation_id, "summary": summary, "description": description,
            "parameters": [*(parameters or []), *([IF_NONE_MATCH] if etag else [])],
            "responses": responses}


def build_spec() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    ref_parameter = {"name": "ref", "in": "path", "required": True,
                     "description": "The clinic's number (`id`) or its `slug`.",
                     "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
    paths = {
        "/": {"get": _json_operation("index", "Where everything is", "Index")},
        "/clinics": {"get": _json_operation(
            "searchClinics", "Search clinics", "SearchPage", parameters=search_parameters(),
            description="The web search's parameters and filters. Filters combine with "
                        "AND. Unknown parameters are refused (400).",
            extra={"422": _problem("The place (near, or lat and lng) is well formed but "
                                   "not one we know, or outside New York City.")})},
        "/clinics/{ref}": {"get": _json_operation(
            "getClinic", "One clinic, every fact with its source and date", "ClinicDetail",
            parameters=[ref_parameter],
            extra={"404": _problem("No clinic has that number or slug.")})},
        "/services": {"get": _json_operation("listServices", "Service codes", "ServiceList")},
        "/languages": {"get": _json_operation("listLanguages", "Languages", "LanguageList")},
        "/neighbourhoods": {"get": _json_operation(
            "listNeighbourhoods", "Neighbourhoods `near` understands", "NeighbourhoodList")},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document",
            "parameters": [IF_NONE_MATCH],
            "responses": {"200": {"description": "OK", "headers": ETAG_HEADER, "content": {
                "application/json": {"schema": {"type": "object"}}}},
                "304": {"description": "Not modified."}}}},
        "/docs": {"get": {
            "operationId": "docs", "summary": "This API described for people",
            "responses": {"200": {"description": "OK", "content": {
                "text/html": {"schema": {"type": "string"}}}}}}},
        "/hsds.zip": {"get": {
            "operationId": "hsdsDatapackage",
            "summary": "The whole directory as an HSDS 3.0 tabular datapackage (zip of CSV)",
            "description": "Active listings, in the CareMap NYC profile of HSDS "
                           "(docs/hsds-profile.md). Streamed; rate-limited more tightly.",
            "responses": {"200": {"description": "A zip file", "content": {
                "application/zip": {"schema": {"type": "string",
                                               "contentMediaType": "application/zip"}}}},
                "400": _problem("This operation takes no parameters."),
                "429": _problem("Too many downloads; try again later.")}}},
        "/hsds.json": {"get": {
            "operationId": "hsdsJson",
            "summary": "The whole directory as HSDS 3.0 JSON (services, dereferenced, "
                       "in one HSDS API Page)",
            "responses": {"200": {"description": "OK", "content": {
                "application/json": {"schema": _ref("HsdsPage")}}},
                "400": _problem("This operation takes no parameters."),
                "429": _problem("Too many downloads; try again later.")}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CareMap NYC API",
            "version": VERSION,
            "description": "Read-only data about clinics in New York City that treat people "
                           "in the sex trade with respect: search, each clinic's facts with "
                           "their sources, and the whole directory as Open Referral HSDS "
                           "3.0. JSON only; errors are RFC 9457 problem details; any site "
                           "may read it (CORS). No key, no account, no tracking.",
            "license": {"name": "Data: see each source's licence in /clinics/{ref}"},
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {"schemas": _schemas()},
    }


def operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The operations of a spec in order, each with its path and method, for the docs."""
    out = []
    base = spec["servers"][0]["url"]
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            out.append({"path": base + (path if path != "/" else "/"), "method": method.upper(),
                        **operation})
    return out
