"""Imports from every kind of source, exports back, and the errors that name a bad record."""

from __future__ import annotations

import math
import sys

import datasets
import pandas as pd

import pytest

from gloss_client import Client, GlossError, ImportRejected, InvalidRecord

RECORDS = [
    {"text": "One fine day", "meta": {"src": "a"}, "_input_hash": 7},
    {"text": "Another day", "label": "POS"},
    {"text": "Ünïcode ✓ and a\nnewline", "meta": {"n": 3, "tags": ["x", "y"]}},
]


def test_a_list_of_dicts_round_trips_through_import_and_export(client: Client, project: str) -> None:
    summary = client.import_records(project, "raw", RECORDS)
    assert summary.committed and summary.imported == 3 and summary.records_read == 3
    assert list(client.export(project, "raw")) == RECORDS
    assert client.get_dataset(project, "raw").example_count == 3


def test_a_one_shot_generator_imports(client: Client, project: str) -> None:
    summary = client.import_records(project, "gen", ({"text": f"line {i}"} for i in range(10)), progress=False)
    assert summary.imported == 10
    assert [r["text"] for r in client.export(project, "gen")] == [f"line {i}" for i in range(10)]


def test_a_dataframe_imports_and_comes_back_from_to_pandas(client: Client, project: str) -> None:
    df = pd.DataFrame(
        {"text": ["first", "second", "third"], "score": [0.5, float("nan"), 2.0], "n": [1, 2, 3]}
    )
    summary = client.import_records(project, "frame", df)
    assert summary.imported == 3
    back = client.to_pandas(project, "frame")
    assert list(back["text"]) == ["first", "second", "third"]
    assert list(back["n"]) == [1, 2, 3]
    assert back["score"][0] == 0.5 and math.isnan(back["score"][1])  # NaN went as null
    rows = list(client.export(project, "frame"))
    assert rows[1] == {"text": "second", "score": None, "n": 2}


def test_a_hugging_face_dataset_imports(client: Client, project: str) -> None:
    ds = datasets.Dataset.from_dict({"text": [f"hf {i}" for i in range(2500)], "stars": [i % 5 for i in range(2500)]})
    summary = client.import_records(project, "hf", ds)
    assert summary.imported == 2500
    rows = list(client.export(project, "hf"))
    assert rows[0] == {"text": "hf 0", "stars": 0} and rows[-1] == {"text": "hf 2499", "stars": 4}


def test_a_dataset_dict_asks_for_a_split(client: Client, project: str) -> None:
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"]})})
    with pytest.raises(TypeError, match="records\\['train'\\]"):
        client.import_records(project, "dd", dd)


def test_an_import_larger_than_one_message_is_chunked(client: Client, project: str) -> None:
    records = [{"text": f"{i} " + "x" * 1000} for i in range(3000)]  # about 3 MiB
    summary = client.import_records(project, "big", records, progress=False)
    assert summary.imported == 3000 and summary.bytes_read > 3_000_000
    assert sum(1 for _ in client.export(project, "big")) == 3000


def test_a_bad_record_rejects_the_import_naming_its_line(client: Client, project: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        client.import_records(project, "bad", [{"text": "fine"}, {"text": ""}, {"meta": {}}], progress=False)
    message = str(caught.value)
    assert "line 2, field `text`" in message and "line 3, field `text`: is missing" in message
    assert [(e.line, e.field) for e in caught.value.errors] == [(2, "text"), (3, "text")]
    assert caught.value.summary.committed is False
    # Atomic: nothing imported, not even the dataset the import would have created.
    with pytest.raises(GlossError) as missing:
        list(client.export(project, "bad"))
    assert missing.value.gloss_code == "not_found"


def test_skip_invalid_imports_the_valid_records(client: Client, project: str) -> None:
    summary = client.import_records(project, "some", [{"text": "fine"}, {"text": ""}], skip_invalid=True)
    assert summary.imported == 1 and summary.invalid == 1 and summary.errors[0].line == 2


def test_a_record_without_a_json_form_names_record_and_field(client: Client, project: str) -> None:
    with pytest.raises(InvalidRecord, match="record 2, field `when`") as caught:
        client.import_records(project, "odd", [{"text": "a"}, {"text": "b", "when": {1, 2}}], progress=False)
    assert caught.value.index == 2
    with pytest.raises(InvalidRecord, match="record 1: expected a mapping"):
        client.import_records(project, "odd", ["just a string"], progress=False)
    assert list(client.export(project, "odd")) == []  # no record of the cancelled import


def test_duplicates_are_counted_not_stored_twice(client: Client, project: str) -> None:
    client.import_records(project, "dup", [{"text": "same"}, {"text": "other"}], progress=False)
    again = client.import_records(project, "dup", [{"text": "same"}, {"text": "new"}], progress=False)
    assert again.imported == 1 and again.duplicates == 1
    assert client.get_dataset(project, "dup").example_count == 3


def test_the_progress_bar_is_drawn_with_tqdm(client: Client, project: str, capfd: pytest.CaptureFixture[str]) -> None:
    client.import_records(project, "bar", [{"text": "a"}, {"text": "b"}], progress=True)
    assert "importing" in capfd.readouterr().err


def test_without_tqdm_there_is_no_bar_and_no_failure(
    client: Client, project: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert client.import_records(project, "nobar", [{"text": "a"}], progress=True).imported == 1
    assert "importing" not in capfd.readouterr().err


def test_exporting_a_missing_dataset_says_not_found(client: Client, project: str) -> None:
    with pytest.raises(GlossError) as caught:
        list(client.export(project, "nope"))
    assert caught.value.gloss_code == "not_found", caught.value


def test_create_dataset_false_needs_an_existing_dataset(client: Client, project: str) -> None:
    with pytest.raises(GlossError):
        client.import_records(project, "absent", [{"text": "a"}], create_dataset=False, progress=False)
    client.create_dataset(project, "present")
    assert client.import_records(project, "present", [{"text": "a"}], create_dataset=False).imported == 1
    assert [d.name for d in client.list_datasets(project)] == ["present"]
