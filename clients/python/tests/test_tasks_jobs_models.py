"""Tasks and their progress and exports; jobs (submit, wait, cancel); the model registry.

The test cluster runs without a worker (`gloss up --no-worker`), so no job can run, let alone
finish, on its own: a queued job ends only when cancelled. Waiting is tested by cancelling the
job while `submit_job(wait=True)` follows it.
"""

from __future__ import annotations

import threading
import time
from typing import List

import pytest

from gloss_client import Client, GlossError
from gloss_client.v1 import feed_pb2, feed_pb2_grpc, jobs_pb2, tasks_pb2


def _task(client: Client, project: str, name: str = "cls") -> tasks_pb2.Task:
    client.import_records(project, "raw", [{"text": "good film"}, {"text": "bad film"}, {"text": "meh"}], progress=False)
    return client.create_task(project, name, dataset="raw", interface="choice", labels=["POS", "NEG"])


def test_a_task_is_created_listed_and_shows_progress(client: Client, project: str) -> None:
    task = _task(client, project)
    assert task.interface == tasks_pb2.INTERFACE_CHOICE and list(task.labels) == ["POS", "NEG"]
    assert task.output_dataset == "cls-answers" and task.state == tasks_pb2.TASK_STATE_OPEN
    assert [t.name for t in client.list_tasks(project)] == ["cls"]
    assert client.get_task(project, "cls").source_examples == 3
    progress = client.progress(project, "cls")
    assert (progress.total, progress.done, progress.remaining) == (3, 0, 3)

    # One answer through the feed service (not wrapped: the client's channel serves it).
    feed = feed_pb2_grpc.FeedServiceStub(client.channel)
    leased = feed.NextExamples(
        feed_pb2.NextRequest(project=project, task="cls", annotator="ann", count=1), metadata=client.metadata
    )
    answer = feed_pb2.Answer(
        answer_id="a-1", project=project, task="cls", seq=leased.examples[0].seq, annotator="ann",
        decision=feed_pb2.DECISION_ACCEPT, choices=["POS"],
    )
    feed.SubmitAnswer(feed_pb2.SubmitRequest(answer=answer), metadata=client.metadata)

    progress = client.progress(project, "cls")
    assert (progress.done, progress.answers) == (1, 1)
    assert [a.annotator for a in progress.annotators] == ["ann"]
    answers = list(client.export_answers(project, "cls"))
    assert len(answers) == 1 and answers[0]["answer"] == "accept" and answers[0]["text"] == "good film"
    gold = list(client.export_answers(project, "cls", selection="gold", format="hf"))
    assert [g["label"] for g in gold] == ["POS"]
    assert client.close_task(project, "cls").state == tasks_pb2.TASK_STATE_CLOSED


def test_a_bad_task_names_the_field(client: Client, project: str) -> None:
    client.import_records(project, "raw", [{"text": "a"}], progress=False)
    with pytest.raises(GlossError, match=r"labels\[1\]") as caught:
        client.create_task(project, "dup", dataset="raw", interface="choice", labels=["POS", "POS"])
    assert caught.value.gloss_code == "invalid_argument"
    with pytest.raises(ValueError, match="interface: unknown value 'chioce'; choose one of binary, choice"):
        client.create_task(project, "typo", dataset="raw", interface="chioce", labels=["A"])


def test_a_job_is_submitted_listed_shown_and_cancelled(client: Client, project: str) -> None:
    _task(client, project)
    job = client.submit_job(project, "cls", "train", config={"epochs": 2}, cpus=0.5)
    assert job.state == jobs_pb2.JOB_STATE_QUEUED and job.spec.kind == jobs_pb2.JOB_KIND_TRAIN
    assert job.resources.cpu_millis == 500 and job.spec.config_json == '{"epochs": 2}'
    assert client.get_job(job.id).id == job.id
    assert job.id in [j.id for j in client.list_jobs(states=["queued"])]
    assert client.job_logs(job.id) == []
    cancelled = client.cancel_job(job.id)
    assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED
    with pytest.raises(GlossError, match="already ended") as caught:
        client.cancel_job(job.id)
    assert caught.value.gloss_code == "failed_precondition"
    assert job.id not in [j.id for j in client.list_jobs(states=["queued"])]


def test_a_bad_job_names_the_field(client: Client, project: str) -> None:
    _task(client, project)
    with pytest.raises(GlossError, match="spec.model"):
        client.submit_job(project, "cls", "predict")
    with pytest.raises(GlossError, match="not found"):
        client.submit_job(project, "missing", "train")


def test_waiting_follows_a_job_to_its_end(client: Client, project: str) -> None:
    _task(client, project)
    lines: List[str] = []
    result: List[jobs_pb2.Job] = []
    waiter = threading.Thread(
        target=lambda: result.append(
            client.submit_job(project, "cls", "train", wait=True, poll_interval=0.1, log=lines.append)
        )
    )
    waiter.start()
    deadline = time.monotonic() + 20
    while not lines:  # the waiter has seen the job queued
        assert time.monotonic() < deadline, "submit_job(wait=True) never reported the job"
        time.sleep(0.05)
    job_id = next(j.id for j in client.list_jobs(states=["queued"]) if j.spec.project == project)
    assert client.get_job(job_id).state == jobs_pb2.JOB_STATE_QUEUED  # no worker: it stays queued
    client.cancel_job(job_id)
    waiter.join(20)
    assert not waiter.is_alive(), "submit_job(wait=True) did not return once the job ended"
    assert result[0].id == job_id and result[0].state == jobs_pb2.JOB_STATE_CANCELLED
    assert lines[0] == f"job {job_id}: queued" and lines[-1] == f"job {job_id}: cancelled"


def test_waiting_gives_up_after_the_timeout(client: Client, project: str) -> None:
    _task(client, project)
    job = client.submit_job(project, "cls", "train")
    try:
        with pytest.raises(TimeoutError, match="still queued"):
            client.wait_job(job.id, timeout=0.3, poll_interval=0.1, log=None)
    finally:
        client.cancel_job(job.id)


def test_the_model_registry_is_reachable(client: Client, project: str) -> None:
    assert client.list_models(project=project) == []
    with pytest.raises(GlossError) as caught:
        client.get_model(f"{project}/cls/tiny")
    assert caught.value.gloss_code == "not_found"
    with pytest.raises(GlossError) as caught:
        client.promote_model(f"{project}/cls/tiny", 1)
    assert caught.value.gloss_code == "not_found"
