"""Load and validate policy files; errors name the file, the line and the field."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fairbill.errors import Location, PolicyError
from fairbill.policy.model import ClauseIdError, Policy
from fairbill.yamlfile import LineMap, load_yaml, syntax_location

BUNDLED_IDS = ("qomon", "voip", "conek", "emailconsul", "kalenner")


def validation_problems(
    exc: ValidationError, lines: LineMap, data: Any
) -> list[tuple[Location, str]]:
    """Turn pydantic errors into (location, message), mapping the error path onto the
    YAML: tagged-union members add the tag name to the path, which the file lacks."""
    problems: list[tuple[Location, str]] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        cause = error.get("ctx", {}).get("error")
        if not loc and isinstance(cause, ClauseIdError):
            loc = ("clauses", cause.index, "id")
        path = _file_path(loc, data)
        problems.append((lines.locate(path), error["msg"]))
    return problems


def _file_path(loc: tuple[Any, ...], data: Any) -> list[str | int]:
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and part not in node:
            # Either a discriminator tag (skip) or a missing/unknown field (name it).
            if isinstance(node.get("kind"), str) and part == node.get("kind"):
                continue
            path.append(part)
            node = None
        else:
            path.append(part)
            node = None
    return path


def parse_policy(text: str, path: str) -> Policy:
    return parse_policy_located(text, path)[0]


def parse_policy_located(text: str, path: str) -> tuple[Policy, LineMap]:
    """The policy and the line of each of its values (for findings that name a line)."""
    try:
        data, lines = load_yaml(text, path)
    except yaml.YAMLError as exc:
        raise PolicyError([(syntax_location(exc, path), f"not valid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise PolicyError([(Location(path, 1, ""), "a policy file is a mapping")])
    try:
        return Policy.model_validate(data), lines
    except ValidationError as exc:
        raise PolicyError(validation_problems(exc, lines, data)) from exc


def load_policy_file(path: str | Path) -> Policy:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            [(Location(str(path), None, ""), f"cannot read: {exc.strerror}")]
        ) from exc
    return parse_policy(text, str(path))


def bundled_policy_text(policy_id: str) -> str:
    return (resources.files("fairbill") / "policies" / f"{policy_id}.yaml").read_text("utf-8")


@cache
def bundled_policy(policy_id: str) -> Policy:
    if policy_id not in BUNDLED_IDS:
        raise PolicyError(
            [(Location(policy_id, None, "policy"), f"no bundled policy {policy_id!r}")]
        )
    return parse_policy(bundled_policy_text(policy_id), f"policies/{policy_id}.yaml")


def resolve_policy(ref: str, base_dir: Path | None = None) -> Policy:
    """A bundled id, or a path to a policy file (relative to ``base_dir``)."""
    if ref in BUNDLED_IDS:
        return bundled_policy(ref)
    candidate = Path(ref)
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    if not candidate.exists():
        raise PolicyError(
            [
                (
                    Location(ref, None, "policy"),
                    f"unknown policy {ref!r}: not a bundled policy "
                    f"({', '.join(BUNDLED_IDS)}) and no policy file at {candidate}",
                )
            ]
        )
    return load_policy_file(candidate)
