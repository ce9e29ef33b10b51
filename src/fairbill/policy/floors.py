"""Legal floors: consumers' statutory cooling-off rights by country (``floors.yaml``).

The floors are data; this module only types and validates them. Each floor names the law,
article and URL it comes from; ``policy.lint`` compares a policy with the floors of its
country. Errors in a floors file are reported like policy errors: file, line, field.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fairbill.errors import Location, PolicyError
from fairbill.policy.load import validation_problems
from fairbill.yamlfile import load_yaml, syntax_location

CustomerType = Literal["consumer", "business"]
Acquisition = Literal["direct_marketing", "self_serve"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LegalSource(_Strict):
    """Where a floor comes from: the law, the article, and a URL to its text."""

    law: str = Field(min_length=1)
    article: str = Field(min_length=1)
    url: str = Field(pattern=r"^https://\S+$")


class Waiver(_Strict):
    """How a consumer may give the right up; a policy declares the acknowledgement with a
    ``terms_acceptance`` clause (``withdrawal_waived_at_payment: true``)."""

    acknowledgement: Literal["immediate_performance"]
    summary: str = Field(min_length=1)
    source: LegalSource


class Floor(_Strict):
    """A consumer's right to withdraw within ``days`` (``unit``) from sales made through any
    of ``acquisition``, in any of ``countries``."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1)
    countries: list[str] = Field(min_length=1)
    customer_types: tuple[CustomerType, ...] = Field(min_length=1)
    acquisition: tuple[Acquisition, ...] = Field(min_length=1)
    days: int = Field(gt=0)
    unit: Literal["calendar", "business"]
    counted_from: str = Field(min_length=1)
    source: LegalSource
    waiver: Waiver | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _countries(self) -> Floor:
        bad = [c for c in self.countries if len(c) != 2 or not c.isalpha() or not c.isupper()]
        if bad:
            raise ValueError(f"countries are ISO 3166 alpha-2 codes, not {bad}")
        return self


class FloorFile(_Strict):
    floors: list[Floor] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> FloorFile:
        ids = [f.id for f in self.floors]
        if len(ids) != len(set(ids)):
            raise ValueError("floor ids must be unique")
        return self


def parse_floors(text: str, path: str) -> tuple[Floor, ...]:
    """Validate a floors file; raise ``PolicyError`` with file:line: field problems."""
    try:
        data, lines = load_yaml(text, path)
    except yaml.YAMLError as exc:
        raise PolicyError([(syntax_location(exc, path), f"not valid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise PolicyError([(Location(path, 1, ""), "a floors file is a mapping")])
    try:
        return tuple(FloorFile.model_validate(data).floors)
    except ValidationError as exc:
        raise PolicyError(validation_problems(exc, lines, data)) from exc


@cache
def bundled_floors() -> tuple[Floor, ...]:
    text = (resources.files("fairbill") / "policy" / "floors.yaml").read_text("utf-8")
    return parse_floors(text, "policy/floors.yaml")
