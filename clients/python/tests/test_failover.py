"""Failover across coordinators and the idempotency-key rule for repeating writes.

The cluster here has one coordinator; the failures a larger one shows (a dead member, a broken
connection after the server applied a write, a refusal by a non-leader) are made by a dead
address in the list and by client interceptors (tests/faults.py) around the real server.
"""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from faults import Faults, Proxy
from gloss_client import Client, GlossError, ImportInterrupted, NoServerAvailable, WriteOutcomeUnknown
from gloss_client._failover import Outcome, classify, normalize
from conftest import Server


def _name() -> str:
    return f"f-{uuid.uuid4().hex[:10]}"


def test_a_dead_address_first_in_the_list_is_passed_over(server: Server, dead_address: str) -> None:
    with Client(f"{dead_address},{server.address}", token=server.token) as c:
        name = _name()
        assert c.create_project(name).name == name
        assert c.server == server.address
        assert c.import_records(name, "raw", [{"text": "a"}], progress=False).imported == 1
        assert [r["text"] for r in c.export(name, "raw")] == ["a"]


def test_calls_move_on_when_the_coordinator_in_use_dies(server: Server, project: str) -> None:
    proxy = Proxy(server.address)
    with Client([proxy.address, server.address], token=server.token) as c:
        assert c.server == proxy.address
        c.import_records(project, "raw", [{"text": "a"}], progress=False)
        proxy.kill()
        assert [r["text"] for r in c.export(project, "raw")] == ["a"]  # a read, repeated
        assert c.server == server.address
    proxy = Proxy(server.address)
    with Client([proxy.address, server.address], token=server.token) as c:
        c.list_projects()
        proxy.kill()
        time.sleep(0.3)  # the client notices the dropped connection while idle, as between two commands
        # A write without a key is repeated only because no connection could be made to the
        # dead coordinator, which proves it never got the write.
        assert c.create_dataset(project, "after").name == "after"
        assert c.server == server.address


def test_no_reachable_server_fails_with_the_list(dead_address: str) -> None:
    started = time.monotonic()
    with Client([dead_address], token="glt_x", patience=1.0) as c:
        with pytest.raises(NoServerAvailable, match=dead_address):
            c.list_projects()
    assert time.monotonic() - started < 10


def test_the_same_key_is_applied_once(client: Client) -> None:
    name, key = _name(), f"key-{uuid.uuid4().hex}"
    first = client.create_project(name, idempotency_key=key)
    again = client.create_project(name, idempotency_key=key)
    assert again == first  # the first result, not ALREADY_EXISTS
    assert [p.name for p in client.list_projects()].count(name) == 1
    with pytest.raises(GlossError) as caught:
        client.create_project(name)  # a fresh key: a new request, which fails
    assert caught.value.gloss_code == "already_exists"


def test_a_write_whose_answer_was_lost_is_repeated_with_its_key_and_applied_once(server: Server) -> None:
    faults = Faults("CreateProject", "lose_answer")
    with Client([server.address], token=server.token, interceptors=[faults]) as c:
        name = _name()
        assert c.create_project(name).name == name
        assert len(faults.attempts) == 2 and faults.attempts[0] == faults.attempts[1] != ""
        assert [p.name for p in c.list_projects()].count(name) == 1


def test_a_write_without_a_key_is_not_repeated_when_its_outcome_is_unknown(server: Server, project: str) -> None:
    faults = Faults("CreateDataset", "lose_answer")
    with Client(server.address, token=server.token, interceptors=[faults]) as c:
        with pytest.raises(WriteOutcomeUnknown, match="may have been applied"):
            c.create_dataset(project, "once")
        assert len(faults.attempts) == 1
        assert [d.name for d in c.list_datasets(project)] == ["once"]  # it was applied, once


def test_a_refusal_by_a_non_leader_is_repeated_even_without_a_key(server: Server, project: str) -> None:
    faults = Faults("CreateDataset", "not_leader", times=2)
    with Client(server.address, token=server.token, interceptors=[faults]) as c:
        assert c.create_dataset(project, "led").name == "led"
        assert len(faults.attempts) == 3


def test_a_broken_import_of_a_list_is_sent_again_and_cannot_double_examples(server: Server, project: str) -> None:
    faults = Faults("ImportExamples", "lose_answer")
    with Client(server.address, token=server.token, interceptors=[faults]) as c:
        summary = c.import_records(project, "raw", [{"text": "a"}, {"text": "b"}], progress=False)
        assert len(faults.attempts) == 2
        # The first attempt was committed (only its answer was lost): the repeat finds duplicates.
        assert (summary.imported, summary.duplicates) == (0, 2)
        assert c.get_dataset(project, "raw").example_count == 2


def test_a_broken_import_of_a_one_shot_iterator_is_not_sent_again(server: Server, project: str) -> None:
    faults = Faults("ImportExamples", "lose_answer")
    with Client(server.address, token=server.token, interceptors=[faults]) as c:
        with pytest.raises(ImportInterrupted, match="one-shot iterator") as caught:
            c.import_records(project, "raw", iter([{"text": "a"}, {"text": "b"}]), progress=False)
        assert caught.value.records_read == 2 and len(faults.attempts) == 1


def test_an_import_refused_before_it_started_is_sent_again_even_from_an_iterator(server: Server, project: str) -> None:
    faults = Faults("ImportExamples", "not_leader")
    with Client(server.address, token=server.token, interceptors=[faults]) as c:
        summary = c.import_records(project, "raw", iter([{"text": "a"}, {"text": "b"}]), progress=False)
        assert summary.imported == 2 and len(faults.attempts) == 2


def test_the_failover_rule() -> None:
    unavailable = grpc.StatusCode.UNAVAILABLE
    assert classify(grpc.StatusCode.NOT_FOUND, {"gloss-code": "not_found"}, "x") == (Outcome.FAIL, None)
    assert classify(unavailable, {"gloss-code": "not_leader"}, "x") == (Outcome.NOTHING_DONE, None)
    assert classify(unavailable, {"gloss-code": "not_leader", "gloss-leader": "h2:7070"}, "x") == (
        Outcome.NOTHING_DONE, "h2:7070",
    )
    assert classify(unavailable, {}, "failed to connect to all addresses; last error: ...") == (
        Outcome.NOTHING_DONE, None,
    )
    assert classify(unavailable, {"gloss-code": "unavailable"}, "no raft leader") == (Outcome.MAYBE_DONE, None)
    assert classify(unavailable, {}, "Socket closed") == (Outcome.MAYBE_DONE, None)


def test_server_lists_are_read_like_glossctl() -> None:
    assert normalize("h1:7070,h2:7070") == (["h1:7070", "h2:7070"], False)
    assert normalize(["http://h1:7070/", " h2:7070 "]) == (["h1:7070", "h2:7070"], False)
    assert normalize("https://h1:7070") == (["h1:7070"], True)
    with pytest.raises(ValueError, match="HOST:PORT"):
        normalize("h1")
