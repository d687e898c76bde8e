"""Durable task ids (``triobg/_durable/_ids.py``): UUID version 7, ordered by time."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from triobg._durable._ids import new_task_id


def test_an_id_is_a_uuid_version_7_in_32_hex_digits() -> None:
    """Ids keep the shape ``uuid4().hex`` had, and parse as RFC 9562 version 7."""
    task_id = new_task_id()
    assert len(task_id) == 32
    assert int(task_id, 16) >= 0
    parsed = uuid.UUID(task_id)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_the_id_starts_with_the_milliseconds_it_was_made_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first 48 bits are the Unix time in milliseconds, so later ids sort after earlier
    ones whatever their random bits (what keeps the stores' id index appending)."""
    now = [1_700_000_000_000_000_000]
    monkeypatch.setattr(time, "time_ns", lambda: now[0])
    ids = []
    for _ in range(50):
        ids.append(new_task_id())
        now[0] += 1_000_000  # one millisecond
    assert ids == sorted(ids)
    assert int(ids[0][:12], 16) == 1_700_000_000_000


def test_ids_made_in_the_same_millisecond_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within one millisecond the 74 random bits tell ids apart (they are also the part a
    client cannot guess when it polls a task by id)."""
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000)
    ids = {new_task_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert {task_id[:12] for task_id in ids} == {f"{1_700_000_000_000:012x}"}


def test_ids_draw_on_random_bytes_read_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.urandom`` is called once per 4 KiB (409 ids), not once per id (it lets go of the
    GIL each time); across a refill the ids stay distinct."""
    calls: list[int] = []
    real = os.urandom

    def counted(size: int) -> bytes:
        calls.append(size)
        return real(size)

    monkeypatch.setattr(os, "urandom", counted)
    ids = {new_task_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert 2 <= len(calls) <= 3
    assert set(calls) == {4096}


def test_a_forked_child_does_not_reuse_its_parents_random_bytes() -> None:
    """After ``fork`` the child reads its own bytes: parent and child, each making ids from
    the same point of the pool, make different ones."""
    new_task_id()  # the pool holds bytes read ahead now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one id back, then leave without running pytest's exit
        os.close(read)
        os.write(write, new_task_id().encode())
        os._exit(0)
    os.close(write)
    try:
        child = os.read(read, 64).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert len(child) == 32
    assert child[12:] != new_task_id()[12:]  # the random part (time may be equal)
