"""JSON responses rendered by orjson (several times faster than ``json.dumps``).

Same bytes as Starlette's ``JSONResponse`` for what the API sends (compact, UTF-8, keys
in order); anything orjson refuses (an integer past 64 bits, a key of another type) is
rendered by ``json.dumps`` as before, so a response never fails for the encoder's sake.
Routes that return a dict under a return type are serialized by FastAPI through pydantic
already; this is for the responses built by hand (``mutation.mutate``, its replays).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return render(content)


def render(content: Any) -> bytes:
    try:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # JSONResponse's own rendering (which raises where it always did).
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode("utf-8")


def json_response(content: Any, status_code: int = 200) -> FastJSONResponse:
    return FastJSONResponse(content, status_code=status_code)
