"""Where ``fairbill serve`` listens: the address checked before anything else is done, so
that a busy port is one clear line and exit status 2, not uvicorn's traceback after the
database was migrated and the demo keys were printed."""

from __future__ import annotations

import errno
import socket

from fairbill.errors import InputError, Location

DEFAULT_PORT = 8000
PORT_ENV = "FAIRBILL_PORT"  # ``make run PORT=...`` sets it too
HOST_ENV = "FAIRBILL_HOST"


def check_free(host: str, port: int) -> None:
    """Raise ``InputError`` (naming ``--host``/``--port``) unless ``host:port`` can be
    listened on now. The test socket is bound as uvicorn binds its own (SO_REUSEADDR: a
    port left in TIME_WAIT by a server just stopped is free), then closed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise _refused("--host", f"cannot resolve {host!r}: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise _refused("--port", _why(host, port, exc)) from exc


def _why(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another fairbill serve?): choose "
            f"another with --port, {PORT_ENV}=..., or make run PORT=..."
        )
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port} (ports below 1024 need privileges)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _refused(option: str, message: str) -> InputError:
    return InputError([(Location("serve", None, option), message)])
