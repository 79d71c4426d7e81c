"""Job documents: YAML or JSON text, one job or many, read into ``kairos.v1.Job``.

The same documents ``kairos job apply -f`` takes (README.md, "Job document"), read by
the same rules as the CLI (cli/src/client/job_file.rs):

- a source holds one job, a YAML stream of several documents (``---`` between
  them), a list of jobs, or ``{"jobs": [...]}`` (what ``kairos job list -o json``
  prints, so a listing can be applied back); empty documents are skipped;
- each job is a ``kairos.v1.Job`` in its proto3 JSON mapping, read by protobuf's
  own JSON parser: keys may be lowerCamelCase or the proto's snake_case, unknown
  fields are errors, durations and policy words are strings, the action is the
  oneof's field name (``shell: {command: ...}`` or ``http: {...}``);
- output-only fields (``version``, ``createdAt``, ``updatedAt``, ``status``) are
  dropped, so what ``get_job`` returned can be applied back;
- at least one job, every job named, no name twice;
- every error names the source, the position (``document 2``, ``item 3``) and the
  problem, as a :class:`~kairos_sdk.errors.JobDocumentError`.

YAML is read the way the CLI's YAML 1.2 reader reads it, not as PyYAML's YAML 1.1
default would: ``yes``/``no``/``on``/``off`` stay strings (only ``true`` and
``false`` are booleans) and an unquoted ``2026-12-01T00:00:00Z`` stays the string
the Timestamp field expects, not a ``datetime``.

Deliberately absent: names, schedules, selectors and every other rule of a job are
the server's to check; it answers ``INVALID_ARGUMENT`` naming the field.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, List, Tuple, Union

import yaml
from google.protobuf import json_format

from ._pb import job_pb2
from .errors import JobDocumentError

Source = Union[str, "os.PathLike[str]"]

_OUTPUT_ONLY = ("version", "created_at", "updated_at", "status")


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans and no implicit timestamps."""


_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_source(source: Source) -> Tuple[str, str]:
    """``(name for messages, text)`` of ``source``.

    A path-like object is a file. A string is a file's path when it is one line and
    such a file exists; otherwise it is the document text itself (named
    ``<text>``).
    """
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
    elif "\n" not in source and source.strip() and os.path.isfile(source):
        path = source
    else:
        return "<text>", source
    try:
        with open(path, encoding="utf-8") as f:
            return path, f.read()
    except OSError as e:
        raise JobDocumentError(f"reading {path}: {e.strerror or e}") from e


def parse_jobs(name: str, text: str) -> List[Tuple[str, job_pb2.Job]]:
    """Every job in ``text`` as ``(origin, job)``, in source order, checked against
    the source-level rules (some job, every job named, no name twice)."""
    values = _documents(name, text)
    several = len(values) > 1
    jobs: List[Tuple[str, job_pb2.Job]] = []
    for index, value in enumerate(values):
        document = f"document {index + 1}"
        if value is None:
            continue
        items, is_list = _items(value)
        for item_index, item in enumerate(items):
            if not is_list:
                origin = document
            elif several:
                origin = f"{document}, item {item_index + 1}"
            else:
                origin = f"item {item_index + 1}"
            try:
                job = to_job(item)
            except (ValueError, json_format.ParseError) as e:
                hint = ""
                if isinstance(item, str) and name == "<text>" and "\n" not in text:
                    hint = f" (no file named {text.strip()!r} either)"
                raise JobDocumentError(f"{name}: {origin}: {e}{hint}") from e
            jobs.append((origin, job))
    _check(name, jobs)
    return jobs


def to_job(value: Any) -> job_pb2.Job:
    """One decoded document (a mapping) as a Job, without its output-only fields."""
    if not isinstance(value, dict):
        raise ValueError(f"a job must be a mapping of fields, found {_kind(value)}")
    job = job_pb2.Job()
    json_format.ParseDict(value, job)
    for field in _OUTPUT_ONLY:
        job.ClearField(field)
    return job


def _documents(name: str, text: str) -> List[Any]:
    """The top-level values: JSON values (concatenated or one per line) when the
    text looks like JSON and reads as such, YAML documents otherwise."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            return _json_values(text)
        except json.JSONDecodeError as json_error:
            # A YAML flow mapping (`{name: a, ...}`) also starts with a brace.
            try:
                return _yaml_documents(name, text)
            except JobDocumentError:
                raise JobDocumentError(f"{name}: {json_error}") from json_error
    return _yaml_documents(name, text)


def _json_values(text: str) -> List[Any]:
    decoder = json.JSONDecoder()
    values, at = [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return values
        value, at = decoder.raw_decode(text, at)
        values.append(value)


def _yaml_documents(name: str, text: str) -> List[Any]:
    values: List[Any] = []
    loader = _Yaml12Loader(text)
    try:
        while loader.check_data():
            values.append(loader.get_data())
    except yaml.YAMLError as e:
        raise JobDocumentError(f"{name}: document {len(values) + 1}: {e}") from e
    finally:
        loader.dispose()
    return values


def _items(value: Any) -> Tuple[List[Any], bool]:
    """The jobs of one document and whether it was a list (or a listing)."""
    if isinstance(value, list):
        return value, True
    if isinstance(value, dict) and list(value) == ["jobs"] and isinstance(value["jobs"], list):
        return value["jobs"], True
    return [value], False


def _check(name: str, jobs: List[Tuple[str, job_pb2.Job]]) -> None:
    if not jobs:
        raise JobDocumentError(f"{name}: no jobs found")
    seen = {}
    for origin, job in jobs:
        if not job.name:
            raise JobDocumentError(f"{name}: {origin}: the job has no name")
        if job.name in seen:
            raise JobDocumentError(
                f"{name}: job {job.name} appears twice ({seen[job.name]} and {origin})"
            )
        seen[job.name] = origin


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
