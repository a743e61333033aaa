"""ISO 3166-1 alpha-2 country codes and names (from django-countries)."""

from django_countries import countries

COUNTRY_CODES = frozenset(code for code, _ in countries)


def country_choices() -> list[tuple[str, str]]:
    return [(code, name) for code, name in countries]
