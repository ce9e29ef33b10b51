"""Canonical JSON for the facts a decision was taken from, and back.

A stored decision keeps the call that produced it, ``{"fn": name, "args": [...],
"kwargs": {...}}``, the merchant (the policy version) left out: the decision row names
that version. ``decode_call`` rebuilds the same values and ``redecide`` runs the call again
under any policy, so a decision is explained by the version that took it and can be taken
again, byte for byte, under that version or another (an audit, a what-if).

Invariants:
- ``encode(decode(text)) == text`` for every text ``encode`` wrote (canonical: sorted keys,
  no spaces, exact decimals, instants with their zone name so calendar arithmetic across
  DST is the same on the way back).
- Only fairbill's own frozen dataclasses and enums are rebuilt (a whitelist by module),
  and only registered pure decision functions are called.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from fairbill.decisions import cancellation, credits, disputes, dunning, plan_change, refund, review
from fairbill.decisions.decision import Decision
from fairbill.decisions.facts import Merchant
from fairbill.money import Money

__all__ = ["DECIDERS", "Call", "decision_of", "decode_call", "encode", "encode_call"]

# The pure functions whose calls are stored: (merchant, *facts) -> a decision or an
# outcome carrying one. A name here is part of the stored format: never rename one.
DECIDERS: dict[str, Callable[..., Any]] = {
    "cancel": cancellation.decide_cancel,
    "chargeback": disputes.decide_chargeback,
    "closure": disputes.decide_closure,
    "dispute_closed": disputes.decide_dispute_closed,
    "expiry": credits.decide_expiry,
    "failed_delivery": credits.decide_failed_delivery,
    "failure": dunning.decide_failure,
    "plan_change": plan_change.decide_plan_change,
    "reactivation": dunning.decide_reactivation,
    "refund": refund.decide_refund,
    "review": review.decide_review,
    "appeal": review.decide_appeal,
    "tier_move": plan_change.decide_tier_move,
    "violation": disputes.decide_violation,
}
_NAMES = {fn: name for name, fn in DECIDERS.items()}
_TRUSTED = ("fairbill.",)


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One call of a decider, without its merchant."""

    fn: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def run(self, merchant: Merchant) -> Decision:
        """The decision this call takes under ``merchant``'s policy."""
        return decision_of(DECIDERS[self.fn](merchant, *self.args, **self.kwargs))


def name_of(fn: Callable[..., Any]) -> str:
    return _NAMES[fn]


def decision_of(result: Any) -> Decision:
    """The decision inside a decider's result (itself, ``.decision``, or a pair's first)."""
    if isinstance(result, Decision):
        return result
    if isinstance(result, tuple):
        return decision_of(result[0])
    return decision_of(result.decision)


def encode(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encode_call(call: Call) -> str:
    return encode({"fn": call.fn, "args": list(call.args), "kwargs": dict(call.kwargs)})


def decode_call(text: str) -> Call:
    _INSTANTS.clear()  # instants are shared within one call only
    data = _DECODER.decode(text)
    return Call(data["fn"], tuple(data["args"]), data["kwargs"])


def _plain(value: Any) -> Any:
    """A JSON value for ``value``; tagged objects for what JSON has no type for."""
    if value is None or (isinstance(value, bool | int | str) and not isinstance(value, enum.Enum)):
        return value
    if isinstance(value, enum.Enum):
        return {"$enum": _path(type(value)), "v": value.value}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, datetime):
        return _instant(value)
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$td": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, ZoneInfo):
        return {"$tz": value.key}
    if isinstance(value, tuple):
        return {"$tuple": [_plain(v) for v in value]}
    if isinstance(value, frozenset | set):
        return {"$set": sorted((_plain(v) for v in value), key=_sort_key)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {"$map": [[_plain(k), _plain(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$dc": _path(type(value)), "f": fields}
    raise TypeError(f"cannot store a {type(value).__name__} among a decision's facts")


def _instant(value: datetime) -> dict[str, Any]:
    if value.tzinfo is None:
        raise TypeError("a decision's instants are aware")
    zone = value.tzinfo.key if isinstance(value.tzinfo, ZoneInfo) else None
    return {"$dt": value.isoformat(), "tz": zone}


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _rebuild(obj: dict[str, Any]) -> Any:
    """``json.loads`` hook: inner objects arrive already rebuilt. A what-if decodes a
    million stored calls of ~45 objects each, so a plain object (a dataclass's fields, the
    keyword arguments) leaves after one set test, and a tagged one finds its tag in the
    order below."""
    if _TAGS.isdisjoint(obj):
        return obj
    if "$dc" in obj:
        cls = _trusted(obj["$dc"])
        fields = obj["f"]
        if cls is Money:
            amount = fields.get("amount")
            if type(amount) is Decimal and amount.is_finite() and len(fields) == 2:
                return Money._checked(amount, fields["currency"])
        return cls(**fields)
    if "$enum" in obj:
        return _trusted(obj["$enum"])(obj["v"])
    if "$dt" in obj:
        # The same instant comes back several times in one call (a period's start is the
        # anchor and a payment's date): rebuilt once per call (immutable values).
        key = (obj["$dt"], obj["tz"])
        found = _INSTANTS.get(key)
        if found is None:
            found = datetime.fromisoformat(key[0])
            if key[1]:
                found = found.astimezone(ZoneInfo(key[1]))
            _INSTANTS[key] = found
        return found
    if "$dec" in obj:
        return Decimal(obj["$dec"])
    if "$tuple" in obj:
        return tuple(obj["$tuple"])
    if "$set" in obj:
        return frozenset(obj["$set"])
    if "$map" in obj:
        return {k: v for k, v in obj["$map"]}
    if "$date" in obj:
        return date.fromisoformat(obj["$date"])
    if "$td" in obj:
        days, seconds, micro = obj["$td"]
        return timedelta(days=days, seconds=seconds, microseconds=micro)
    return ZoneInfo(obj["$tz"])


_TAGS = frozenset({"$dc", "$enum", "$dt", "$dec", "$tuple", "$set", "$map", "$date", "$td", "$tz"})
_DECODER = json.JSONDecoder(object_hook=_rebuild)
_INSTANTS: dict[tuple[str, str | None], datetime] = {}


@cache
def _trusted(path: str) -> type:
    module, _, qualname = path.partition(":")
    if not module.startswith(_TRUSTED):
        raise ValueError(f"refusing to rebuild {path}: not one of fairbill's own types")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not isinstance(found, type) or not (
        dataclasses.is_dataclass(found) or issubclass(found, enum.Enum)
    ):
        raise ValueError(f"refusing to rebuild {path}: not a dataclass or an enum")
    return found
