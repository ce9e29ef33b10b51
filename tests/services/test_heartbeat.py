"""Heartbeats: a row per process that only moves forward; processes silent for a week are
forgotten; a failed beat is logged, not raised; the thread stops with its event."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from fairbill.services import heartbeat
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.tables import WorkerHeartbeatRow

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def test_beats_move_forward_and_old_processes_are_forgotten() -> None:
    engine = make_engine("sqlite://")
    create_schema(engine)
    sessions = session_factory(engine)
    with sessions() as session:
        heartbeat.beat(session, "worker@old:1", T0 - heartbeat.FORGET - timedelta(seconds=1))
        heartbeat.beat(session, "worker@a:2", T0)
        heartbeat.beat(session, "worker@a:2", T0 - timedelta(seconds=30))  # late: ignored
        heartbeat.beat(session, "worker@b:3", T0 + timedelta(seconds=15))
        session.commit()
        rows = session.scalars(select(WorkerHeartbeatRow).order_by(WorkerHeartbeatRow.name))
        assert [(r.name, r.started_at, r.beat_at) for r in rows] == [
            ("worker@a:2", T0, T0),
            ("worker@b:3", T0 + timedelta(seconds=15), T0 + timedelta(seconds=15)),
        ]
        assert heartbeat.latest(session) == T0 + timedelta(seconds=15)
    engine.dispose()


def test_a_failed_beat_is_logged_and_the_thread_stops(caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine("sqlite://")  # no schema: every beat fails
    stop = threading.Event()
    stop.set()  # the first beat, then the loop ends at once
    heartbeat.beat_forever(session_factory(engine), heartbeat.process_name("worker"), stop)
    assert "heartbeat of worker@" in caplog.text
    engine.dispose()
