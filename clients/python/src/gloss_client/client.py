"""The :class:`Client`: a thin, typed layer over the generated gRPC stubs of a Gloss cluster.

Results are the protobuf messages of :mod:`gloss_client.v1` (Project, Dataset, ImportSummary,
Task, TaskProgress, Job, Model, ...), except for exports, which yield one ``dict`` per record
(parsed from the server's JSON Lines), and :meth:`Client.to_pandas`. Failures raise
:class:`~gloss_client.errors.GlossError` subclasses.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
import weakref
from os import PathLike
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from . import _progress, _records
from ._calls import MAX_RECEIVE, Caller
from ._failover import Outcome, Pool, classify, normalize
from .errors import (
    DETAILS_METADATA,
    GlossError,
    ImportInterrupted,
    ImportRejected,
    rpc_parts,
)
from .v1 import cluster_pb2, cluster_pb2_grpc, common_pb2, datasets_pb2, datasets_pb2_grpc
from .v1 import jobs_pb2, jobs_pb2_grpc, models_pb2, models_pb2_grpc, projects_pb2, projects_pb2_grpc
from .v1 import tasks_pb2, tasks_pb2_grpc

log = logging.getLogger("gloss_client")

#: Bytes per import message (the server accepts any chunking).
IMPORT_CHUNK = 1 << 20

Enum = Union[str, int]
_TERMINAL = (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)


def _enum(wrapper: Any, prefix: str, value: Enum, what: str) -> Any:
    """The number of enum value `value`: an int, or a name with or without its prefix, any case
    (`"choice"`, `"ner-correct"`, `"INTERFACE_NER"`)."""
    if isinstance(value, int):
        return value
    name = str(value).strip().upper().replace("-", "_").replace(".", "_")
    if not name.startswith(prefix):
        name = prefix + name
    try:
        return int(wrapper.Value(name))
    except ValueError:
        choices = ", ".join(n[len(prefix) :].lower() for n in wrapper.keys() if not n.endswith("UNSPECIFIED"))
        raise ValueError(f"{what}: unknown value {value!r}; choose one of {choices}") from None


def _state_name(state: int) -> str:
    return jobs_pb2.JobState.Name(state)[len("JOB_STATE_") :].lower()


def new_idempotency_key() -> str:
    """A fresh idempotency key (`gloss-py-<uuid>`)."""
    return f"gloss-py-{uuid.uuid4().hex}"


def _json_lines(chunks: Iterator[datasets_pb2.ExportChunk], bar: Any) -> Iterator[Dict[str, Any]]:
    for chunk in chunks:
        if chunk.total_records and getattr(bar, "total", 0) != chunk.total_records:
            bar.reset(total=chunk.total_records)
        for line in chunk.data.split(b"\n"):
            if line.strip():
                yield json.loads(line)
        bar.update(chunk.records)


class Client:
    """A connection to a Gloss cluster.

    Args:
        servers: coordinator addresses: ``"host:port"``, ``"h1:7070,h2:7070"`` or a list of them
            (an ``https://`` prefix asks for TLS). The first reachable one is used; calls move to
            the next when it fails (see :mod:`gloss_client._failover`). Default: ``$GLOSS_SERVER``,
            else ``127.0.0.1:7070``.
        token: bearer token (``glt_...``) sent with every call. Default: ``$GLOSS_TOKEN``.
        ca_cert: path of the cluster's CA certificate (``ca.crt``); the connection then uses TLS.
            Default: ``$GLOSS_CA_CERT``.
        patience: seconds a call keeps trying other coordinators (the cluster may be electing).
        connect_timeout: seconds to wait for one coordinator to accept a connection.
        call_timeout: deadline of each unary call in seconds (None: none). Streams have none.
        interceptors: gRPC client interceptors to wrap every connection with (tracing, tests).

    Reads are repeated freely on UNAVAILABLE. Writes are repeated only when nothing can have been
    done (the coordinator refused as a non-leader, or no connection was made) or when they carry
    an idempotency key (:meth:`create_project`); otherwise an ambiguous failure raises
    :class:`~gloss_client.errors.WriteOutcomeUnknown`. Safe to share between threads.
    """

    def __init__(
        self,
        servers: Union[str, Sequence[str], None] = None,
        token: Optional[str] = None,
        ca_cert: Optional[Union[str, "PathLike[str]"]] = None,
        *,
        patience: float = 15.0,
        connect_timeout: float = 3.0,
        call_timeout: Optional[float] = 120.0,
        interceptors: Sequence[Any] = (),
    ) -> None:
        # The same defaults as glossctl: its environment variables, then the local coordinator.
        servers = servers or os.environ.get("GLOSS_SERVER") or "127.0.0.1:7070"
        token = token if token is not None else os.environ.get("GLOSS_TOKEN")
        ca_cert = ca_cert if ca_cert is not None else (os.environ.get("GLOSS_CA_CERT") or None)
        addresses, wants_tls = normalize(servers)
        credentials = None
        if ca_cert is not None:
            with open(ca_cert, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        elif wants_tls:
            credentials = grpc.ssl_channel_credentials()
        options = [("grpc.max_receive_message_length", MAX_RECEIVE)]
        self._pool = Pool(addresses, credentials, options, interceptors, connect_timeout)
        # Close the channel when the client is collected, and at the latest at exit: a gRPC
        # channel still open while the interpreter shuts down can hang it.
        weakref.finalize(self, self._pool.close)
        metadata: List[Tuple[str, str]] = []
        if token and token.strip():
            metadata.append(("authorization", f"Bearer {token.strip()}"))
        self._calls = Caller(self._pool, metadata, patience, call_timeout)

    # -- connection ----------------------------------------------------------------------------

    @property
    def servers(self) -> List[str]:
        """The coordinator addresses, in the order they are tried."""
        return list(self._pool.servers)

    @property
    def server(self) -> str:
        """The coordinator in use (connecting to the first reachable one if none is yet)."""
        return self._pool.current(self._calls.deadline()).address

    @property
    def channel(self) -> grpc.Channel:
        """The gRPC channel to the coordinator in use, for services this client does not wrap
        (pass :attr:`metadata` with each call: it holds the token)."""
        return self._pool.current(self._calls.deadline()).channel

    @property
    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        """The metadata sent with every call (the bearer token)."""
        return self._calls.metadata

    def close(self) -> None:
        """Closes the connection."""
        self._pool.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cluster_status(self) -> cluster_pb2.ClusterStatus:
        """Raft status of the coordinator group (leader, members, terms)."""
        return self._calls.unary(cluster_pb2_grpc.ClusterServiceStub, "GetClusterStatus",
                                 cluster_pb2.GetClusterStatusRequest(), safe=True)

    # -- projects and datasets -----------------------------------------------------------------

    def create_project(self, name: str, description: str = "", *, idempotency_key: Optional[str] = None) -> common_pb2.Project:
        """Creates a project. The call carries `idempotency_key` (a fresh one when not given) and
        every retry repeats it, so the project is created once; calling again with the same key
        returns the first result instead of failing with ALREADY_EXISTS."""
        request = projects_pb2.CreateProjectRequest(
            name=name, description=description, idempotency_key=idempotency_key or new_idempotency_key()
        )
        return self._calls.unary(projects_pb2_grpc.ProjectServiceStub, "CreateProject", request, safe=True)

    def list_projects(self) -> List[common_pb2.Project]:
        """Every project, by name."""
        r = self._calls.unary(projects_pb2_grpc.ProjectServiceStub, "ListProjects",
                              projects_pb2.ListProjectsRequest(), safe=True)
        return list(r.projects)

    def get_project(self, name: str) -> common_pb2.Project:
        """One project (NOT_FOUND when missing)."""
        return self._calls.unary(projects_pb2_grpc.ProjectServiceStub, "GetProject",
                                 projects_pb2.GetProjectRequest(name=name), safe=True)

    def delete_project(self, name: str, *, force: bool = False) -> None:
        """Deletes a project; `force` also deletes its datasets."""
        self._calls.unary(projects_pb2_grpc.ProjectServiceStub, "DeleteProject",
                          projects_pb2.DeleteProjectRequest(name=name, force=force), safe=False)

    def create_dataset(self, project: str, name: str, *, kind: Enum = "source", description: str = "") -> common_pb2.Dataset:
        """Creates an empty dataset (`kind`: source, annotations or gold)."""
        request = datasets_pb2.CreateDatasetRequest(
            project=project, name=name, description=description,
            kind=_enum(common_pb2.DatasetKind, "DATASET_KIND_", kind, "kind"),
        )
        return self._calls.unary(datasets_pb2_grpc.DatasetServiceStub, "CreateDataset", request, safe=False)

    def list_datasets(self, project: str) -> List[common_pb2.Dataset]:
        """A project's datasets, by name."""
        r = self._calls.unary(datasets_pb2_grpc.DatasetServiceStub, "ListDatasets",
                              datasets_pb2.ListDatasetsRequest(project=project), safe=True)
        return list(r.datasets)

    def get_dataset(self, project: str, dataset: str) -> common_pb2.Dataset:
        """One dataset with its counts."""
        return self._calls.unary(datasets_pb2_grpc.DatasetServiceStub, "GetDataset",
                                 datasets_pb2.GetDatasetRequest(project=project, name=dataset), safe=True)

    def delete_dataset(self, project: str, dataset: str) -> None:
        """Deletes a dataset and its examples."""
        self._calls.unary(datasets_pb2_grpc.DatasetServiceStub, "DeleteDataset",
                          datasets_pb2.DeleteDatasetRequest(project=project, name=dataset), safe=False)

    # -- import and export ---------------------------------------------------------------------

    def import_records(
        self,
        project: str,
        dataset: str,
        records: Any,
        *,
        create_dataset: bool = True,
        skip_invalid: bool = False,
        progress: bool = True,
        source_name: Optional[str] = None,
        retry: bool = True,
    ) -> datasets_pb2.ImportSummary:
        """Imports `records` into `project/dataset` and returns the server's summary.

        `records` is an iterable of dicts (each a Prodigy-style record with `text` and optional
        `meta`, `label`, `spans`, ...; other fields are kept), a pandas DataFrame (one record per
        row, NaN as null) or a Hugging Face ``datasets.Dataset``. They are streamed to
        ``DatasetService.ImportExamples`` as JSON Lines in 1 MiB messages, with a tqdm progress
        bar when `progress` and tqdm is installed.

        The import is atomic: unless `skip_invalid`, one invalid record rejects it all
        (:class:`~gloss_client.errors.ImportRejected`, whose message names each bad record as
        `line N`, the N-th record given). A record that cannot be written as JSON raises
        :class:`~gloss_client.errors.InvalidRecord` and cancels the import.

        When the connection breaks (UNAVAILABLE), the import is sent again on another
        coordinator if `retry` and either nothing had been read from `records` yet or `records`
        can be read again (a list, DataFrame, Dataset: anything but a one-shot iterator). That is
        safe: the server makes an import visible only after reading the whole stream, and a
        repeat cannot double examples (a record whose text is already in the dataset counts as a
        duplicate; so if the break only hid a commit, the repeat's summary counts them there).
        A one-shot iterator already read from raises
        :class:`~gloss_client.errors.ImportInterrupted` instead.
        """
        source = _records.source_of(records, source_name)
        header = datasets_pb2.ImportHeader(
            project=project, dataset=dataset, format=datasets_pb2.IMPORT_FORMAT_JSONL,
            skip_invalid=skip_invalid, create_dataset=create_dataset, source_name=source.name,
        )
        bar = _progress.bar(progress, source.total, f"importing {project}/{dataset}", "rec")
        deadline = self._calls.deadline()
        attempt = 0
        try:
            while True:
                conn = self._calls.pool.current(deadline)
                feed = _Feed(header, source, bar)
                stub = conn.stub(datasets_pb2_grpc.DatasetServiceStub)
                future = stub.ImportExamples.future(iter(feed), metadata=self._calls.metadata)
                feed.attach(future)
                try:
                    return future.result()
                except BaseException as err:
                    consumed = feed.close()
                    if feed.error is not None:
                        raise feed.error from None
                    if not isinstance(err, grpc.RpcError):
                        future.cancel()
                        raise
                    leader = self._import_failed(err, conn.address, source, consumed, feed.read, retry, deadline)
                    self._calls.pool.fail_over(conn, leader)
                attempt += 1
                log.warning("import into %s/%s broke; sending it again (attempt %d)", project, dataset, attempt + 1)
                bar.reset(total=source.total)
                self._calls.pause(attempt)
        finally:
            bar.close()

    def _import_failed(self, err: grpc.RpcError, server: str, source: _records.Source, consumed: bool,
                       read: int, retry: bool, deadline: float) -> Optional[str]:
        """Raises the error for a failed import unless it may be sent again; then returns the
        leader's address if the server named it."""
        code, details, trailers = rpc_parts(err)
        summary = trailers.get(DETAILS_METADATA)
        if code == grpc.StatusCode.INVALID_ARGUMENT and isinstance(summary, bytes) and summary:
            raise ImportRejected(details, datasets_pb2.ImportSummary.FromString(summary), server=server) from None
        outcome, leader = classify(code, trailers, details)
        if outcome is Outcome.FAIL:
            raise GlossError.from_rpc(err, server) from None
        if consumed and not source.replayable:
            fate = (
                "nothing was imported" if outcome is Outcome.NOTHING_DONE
                else "nothing became visible unless only the commit's answer was lost"
            )
            raise ImportInterrupted(
                f"{code.name if code else 'UNKNOWN'}: {details} (the import broke after {read} record(s) were read "
                f"from a one-shot iterator, so it could not be sent again; {fate}: import the records again, "
                "those already in are skipped as duplicates)",
                read, code=code, details=details, server=server,
            )
        if not retry or time.monotonic() >= deadline:
            raise GlossError.from_rpc(err, server, "the import was not sent again") from None
        return leader

    def export(self, project: str, dataset: str, *, progress: bool = False) -> Iterator[Dict[str, Any]]:
        """Every example of `project/dataset` as a dict (the record as imported), in import order,
        from a consistent snapshot. Streams; repeated on another coordinator only when it fails
        before its first record."""
        request = datasets_pb2.ExportRequest(project=project, dataset=dataset)
        bar = _progress.bar(progress, None, f"exporting {project}/{dataset}", "rec")
        try:
            yield from _json_lines(self._calls.stream(datasets_pb2_grpc.DatasetServiceStub, "ExportExamples", request), bar)
        finally:
            bar.close()

    def to_pandas(self, project: str, dataset: str, *, progress: bool = True) -> Any:
        """`project/dataset` as a pandas DataFrame, one row per example (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("to_pandas needs pandas: pip install 'gloss-client[pandas]'") from e
        return pd.DataFrame.from_records(list(self.export(project, dataset, progress=progress)))

    # -- tasks ---------------------------------------------------------------------------------

    def create_task(
        self,
        project: str,
        name: str,
        *,
        dataset: str,
        interface: Enum,
        labels: Sequence[str],
        overlap: int = 0,
        ordering: Enum = 0,
        seed: int = 0,
        pool: Sequence[str] = (),
        lease_ttl_ms: int = 0,
        disagreement: Enum = 0,
        review_labels: Sequence[str] = (),
        instructions: str = "",
        output_dataset: str = "",
        gold_dataset: str = "",
    ) -> tasks_pb2.Task:
        """Creates a task over the source dataset `dataset`. `interface`: binary, choice,
        multi_choice, ner, ner_correct or spans; `ordering`: sequential, random or uncertainty;
        `disagreement`: any or per_label. Zero values take the server's defaults."""
        task = tasks_pb2.Task(
            project=project, name=name, source_dataset=dataset, labels=list(labels),
            interface=_enum(tasks_pb2.Interface, "INTERFACE_", interface, "interface"),
            ordering=_enum(tasks_pb2.Ordering, "ORDERING_", ordering, "ordering"),
            disagreement=_enum(tasks_pb2.DisagreementPolicy, "DISAGREEMENT_POLICY_", disagreement, "disagreement"),
            overlap=overlap, seed=seed, pool=list(pool), lease_ttl_ms=lease_ttl_ms,
            review_labels=list(review_labels), instructions=instructions,
            output_dataset=output_dataset, gold_dataset=gold_dataset,
        )
        return self._calls.unary(tasks_pb2_grpc.TaskServiceStub, "CreateTask",
                                 tasks_pb2.CreateTaskRequest(task=task), safe=False)

    def list_tasks(self, project: str) -> List[tasks_pb2.Task]:
        """A project's tasks, by name."""
        r = self._calls.unary(tasks_pb2_grpc.TaskServiceStub, "ListTasks",
                              tasks_pb2.ListTasksRequest(project=project), safe=True)
        return list(r.tasks)

    def get_task(self, project: str, task: str) -> tasks_pb2.Task:
        """One task."""
        return self._calls.unary(tasks_pb2_grpc.TaskServiceStub, "GetTask",
                                 tasks_pb2.GetTaskRequest(project=project, task=task), safe=True)

    def close_task(self, project: str, task: str) -> tasks_pb2.Task:
        """Closes a task: no more examples handed out nor answers taken."""
        return self._calls.unary(tasks_pb2_grpc.TaskServiceStub, "CloseTask",
                                 tasks_pb2.CloseTaskRequest(project=project, task=task), safe=False)

    def progress(self, project: str, task: str) -> tasks_pb2.TaskProgress:
        """Progress of the task and of each annotator (a linearizable read)."""
        return self._calls.unary(tasks_pb2_grpc.TaskServiceStub, "GetProgress",
                                 tasks_pb2.GetProgressRequest(project=project, task=task), safe=True)

    def agreement(self, project: str, task: str) -> tasks_pb2.AgreementReport:
        """Inter-annotator agreement, overall and per label."""
        return self._calls.unary(tasks_pb2_grpc.TaskServiceStub, "GetAgreement",
                                 tasks_pb2.GetAgreementRequest(project=project, task=task), safe=True)

    def export_answers(
        self, project: str, task: str, selection: Enum = "answers", format: Enum = "prodigy", *, progress: bool = False
    ) -> Iterator[Union[Dict[str, Any], str]]:
        """A task's answers (`selection` "answers") or gold records ("gold"). `format` "prodigy"
        or "hf" yields one dict per record; "conll" yields the export's text lines (str)."""
        fmt = _enum(tasks_pb2.ExportFormat, "EXPORT_FORMAT_", format, "format")
        request = tasks_pb2.ExportAnswersRequest(
            project=project, task=task, format=fmt,
            selection=_enum(tasks_pb2.ExportSelection, "EXPORT_SELECTION_", selection, "selection"),
        )
        chunks = self._calls.stream(tasks_pb2_grpc.TaskServiceStub, "ExportAnswers", request)
        bar = _progress.bar(progress, None, f"exporting {project}/{task}", "rec")
        try:
            if fmt == tasks_pb2.EXPORT_FORMAT_CONLL:
                pending = ""
                for chunk in chunks:
                    pending += chunk.data.decode("utf-8")
                    *lines, pending = pending.split("\n")
                    yield from lines
                    bar.update(chunk.records)
                if pending:
                    yield pending
            else:
                yield from _json_lines(chunks, bar)
        finally:
            bar.close()

    # -- jobs ----------------------------------------------------------------------------------

    def submit_job(
        self,
        project: str,
        task: str,
        kind: Enum,
        *,
        model: str = "",
        config: Optional[Union[Mapping[str, Any], str]] = None,
        cpus: float = 0.0,
        memory_bytes: int = 0,
        gpus: int = 0,
        gpu_memory_bytes: int = 0,
        gpu_model: str = "",
        constraints: Optional[Mapping[str, str]] = None,
        priority: int = 0,
        max_attempts: int = 0,
        wait: bool = False,
        poll_interval: float = 0.5,
        timeout: Optional[float] = None,
        log: Optional[Callable[[str], None]] = print,
    ) -> jobs_pb2.Job:
        """Queues a job (`kind`: train, evaluate or predict) on `project/task` and returns it.

        `model` names the model of evaluate/predict jobs; `config` holds kind-specific settings
        (a dict or a JSON object string, e.g. ``{"epochs": 30}``). Zero resources take the
        server's defaults (1 CPU, 512 MiB). With `wait`, follows the job to its end (see
        :meth:`wait_job`) and returns it then, whatever the end (check ``job.state``).

        Submitting carries no idempotency key (the API has none for jobs), so an ambiguous
        failure raises :class:`~gloss_client.errors.WriteOutcomeUnknown` instead of risking a
        second job.
        """
        config_json = config if isinstance(config, str) else (json.dumps(dict(config)) if config else "")
        request = jobs_pb2.SubmitJobRequest(
            spec=jobs_pb2.JobSpec(
                kind=_enum(jobs_pb2.JobKind, "JOB_KIND_", kind, "kind"),
                project=project, task=task, model=model, config_json=config_json,
            ),
            resources=jobs_pb2.Resources(
                cpu_millis=int(round(cpus * 1000)), memory_bytes=memory_bytes, gpu_count=gpus,
                gpu_memory_bytes=gpu_memory_bytes, gpu_model=gpu_model,
            ),
            constraints=dict(constraints or {}), priority=priority, max_attempts=max_attempts,
        )
        job = self._calls.unary(jobs_pb2_grpc.JobServiceStub, "SubmitJob", request, safe=False)
        if not wait:
            return job
        return self.wait_job(job.id, poll_interval=poll_interval, timeout=timeout, log=log)

    def wait_job(
        self,
        job_id: str,
        *,
        poll_interval: float = 0.5,
        timeout: Optional[float] = None,
        log: Optional[Callable[[str], None]] = print,
    ) -> jobs_pb2.Job:
        """Follows a job until it succeeds, fails or is cancelled, and returns it then. Passes
        each log line (``[attempt N] text``) and each change of state (``job j-1: running``) to
        `log` as they come (None: silent). Raises TimeoutError after `timeout` seconds."""
        give_up = None if timeout is None else time.monotonic() + timeout
        after, state = 0, None
        while True:
            for line in self.job_logs(job_id, after=after):
                if log:
                    log(f"[attempt {line.attempt}] {line.text}")
                after = line.line
            job = self.get_job(job_id)
            if job.state != state and log:
                log(f"job {job.id}: {_state_name(job.state)}" + (f" ({job.error})" if job.error else ""))
            state = job.state
            if job.state in _TERMINAL:
                return job
            if give_up is not None and time.monotonic() >= give_up:
                raise TimeoutError(f"job {job_id} is still {_state_name(job.state)} after {timeout:g}s")
            time.sleep(poll_interval)

    def get_job(self, job_id: str) -> jobs_pb2.Job:
        """One job."""
        return self._calls.unary(jobs_pb2_grpc.JobServiceStub, "GetJob", jobs_pb2.GetJobRequest(id=job_id), safe=True)

    def list_jobs(self, states: Sequence[Enum] = (), limit: int = 0) -> List[jobs_pb2.Job]:
        """Jobs, newest first; only those in `states` (queued, placed, running, succeeded,
        failed, cancelled) when given; `limit` 0 for the server's default (100)."""
        request = jobs_pb2.ListJobsRequest(
            states=[_enum(jobs_pb2.JobState, "JOB_STATE_", s, "state") for s in states], limit=limit
        )
        return list(self._calls.unary(jobs_pb2_grpc.JobServiceStub, "ListJobs", request, safe=True).jobs)

    def cancel_job(self, job_id: str) -> jobs_pb2.Job:
        """Cancels a job: a queued one ends at once, a running one when its worker stops it."""
        return self._calls.unary(jobs_pb2_grpc.JobServiceStub, "CancelJob", jobs_pb2.CancelJobRequest(id=job_id), safe=False)

    def job_logs(self, job_id: str, after: int = 0) -> List[jobs_pb2.LogLine]:
        """A job's log lines after line number `after`."""
        r = self._calls.unary(jobs_pb2_grpc.JobServiceStub, "JobLogs",
                              jobs_pb2.JobLogsRequest(id=job_id, after=after), safe=True)
        return list(r.lines)

    def list_workers(self) -> List[jobs_pb2.Worker]:
        """Registered workers with their capacity and jobs."""
        r = self._calls.unary(jobs_pb2_grpc.JobServiceStub, "ListWorkers", jobs_pb2.ListWorkersRequest(), safe=True)
        return list(r.workers)

    # -- models --------------------------------------------------------------------------------

    def list_models(self, project: str = "", task: str = "") -> List[models_pb2.Model]:
        """Registered models, newest version first; of one project or task when given."""
        r = self._calls.unary(models_pb2_grpc.ModelServiceStub, "ListModels",
                              models_pb2.ListModelsRequest(project=project, task=task), safe=True)
        return list(r.models)

    def get_model(self, name: str, version: int = 0) -> models_pb2.Model:
        """One model (`project/task/kind`); version 0 for the latest complete one."""
        return self._calls.unary(models_pb2_grpc.ModelServiceStub, "GetModel",
                                 models_pb2.GetModelRequest(name=name, version=version), safe=True)

    def promote_model(self, name: str, version: int, *, force: bool = False) -> models_pb2.Model:
        """Makes a model version its task's assisting model. The server allows it only when the
        model beats the teacher on the same gold test split, unless `force` (recorded)."""
        return self._calls.unary(models_pb2_grpc.ModelServiceStub, "PromoteModel",
                                 models_pb2.PromoteModelRequest(name=name, version=version, force=force), safe=False)


class _Feed:
    """The request stream of one import attempt: the header, then the records as JSON Lines in
    messages of about :data:`IMPORT_CHUNK` bytes. gRPC reads it on its own thread; a record that
    cannot be encoded cancels the call and is kept in :attr:`error`."""

    def __init__(self, header: datasets_pb2.ImportHeader, source: _records.Source, bar: Any) -> None:
        self.header = header
        self.source = source
        self.bar = bar
        self.sent = 0
        self.read = 0
        self.error: Optional[BaseException] = None
        self._future: Any = None
        self._attached = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._consumed = False

    def attach(self, future: Any) -> None:
        """Hands over the call, for cancelling it."""
        self._future = future
        self._attached.set()

    def close(self) -> bool:
        """Ends the attempt; returns whether any record was read from the source."""
        with self._lock:
            self._closed = True
            return self._consumed

    def _cancel(self, error: BaseException) -> None:
        self.error = error
        self._attached.wait(10)
        if self._future is not None:
            self._future.cancel()

    def __iter__(self) -> Iterator[datasets_pb2.ImportRequest]:
        yield datasets_pb2.ImportRequest(header=self.header)
        with self._lock:
            if self._closed:
                return
            self._consumed = True
        buf = bytearray()
        pending = 0
        try:
            for index, record in enumerate(self.source.rows(), 1):
                self.read = index
                if self._closed:
                    return
                buf += _records.encode(record, index)
                pending += 1
                if len(buf) >= IMPORT_CHUNK:
                    yield from self._flush(buf, pending)
                    buf, pending = bytearray(), 0
            if buf:
                yield from self._flush(buf, pending)
        except Exception as e:  # a bad record, or the source failing: never a partial import
            self._cancel(e)

    def _flush(self, buf: bytearray, records: int) -> Iterator[datasets_pb2.ImportRequest]:
        data = bytes(buf)
        for start in range(0, len(data), IMPORT_CHUNK):
            yield datasets_pb2.ImportRequest(data=data[start : start + IMPORT_CHUNK])
        self.sent += records
        self.bar.update(records)
