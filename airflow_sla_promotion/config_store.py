"""Job YAML files: load and validate a jobs folder; atomic, locked, audited rewrites with restorable history."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from airflow_sla_promotion.spec import JOB_ID_MAX_LENGTH, JOB_ID_PATTERN, IngestionJob

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from ruamel.yaml.comments import CommentedMap

JOB_FILE_SUFFIX = ".yaml"
#: Hidden folder beside the job files that keeps every previous version of every job file.
HISTORY_FOLDER = ".history"
DEFAULT_LOCK_TIMEOUT = 60.0

_VERSION_DIGITS = 6
_VERSION_NAME = re.compile(rf"^\d{{{_VERSION_DIGITS}}}$")


class ConfigStoreError(Exception):
    """A job file cannot be read, changed or restored; the message says why."""


class InvalidJobIdError(ConfigStoreError, ValueError):
    """A job id that is not a valid job id (for example a path): never turned into a file name."""


class JobFileError(ConfigStoreError):
    """One problem of one job file, with the field it concerns.

    :param path: the job file.
    :param field: dotted field path (``resource_requirements.cpu_cores``), ``<yaml>`` for a syntax error,
        ``<file>`` when the file cannot be read or is misnamed, ``<root>`` when it is not a mapping.
    :param message: what is wrong.
    """

    def __init__(self, path: str | os.PathLike[str], field: str, message: str) -> None:
        super().__init__(path, field, message)
        self.path = Path(path)
        self.field = field
        self.message = message
        #: Every problem found in the same file (this one first), when validation found several.
        self.all_errors: tuple[JobFileError, ...] = (self,)

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"


# --- reading -------------------------------------------------------------------------------------------


class _JobLoader(yaml.CSafeLoader):
    """libyaml's fast safe loader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            with contextlib.suppress(TypeError):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_error_message(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        problem = error.problem or "invalid YAML"
        context = f" ({error.context})" if error.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}{context}"
    return str(error)


def _validation_errors(path: Path, error: ValidationError) -> list[JobFileError]:
    return [
        JobFileError(path, ".".join(str(part) for part in item["loc"]) or "<root>", _message(item))
        for item in error.errors(include_url=False)
    ]


def _message(item: Mapping[str, Any]) -> str:
    """Pydantic's message without the "Value error, " it puts before our validators' own words."""
    message = str(item["msg"])
    return message.removeprefix("Value error, ") if item.get("type") == "value_error" else message


def _parse(path: Path, text: str | bytes, context: Mapping[str, Any] | None) -> IngestionJob:
    """Validate the text of one job file; raise the first problem with all of them attached."""
    try:
        data = yaml.load(text, Loader=_JobLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise JobFileError(path, "<yaml>", _yaml_error_message(error)) from None
    if data is None:
        raise JobFileError(path, "<root>", "the file is empty; expected a mapping of job fields")
    if not isinstance(data, dict):
        raise JobFileError(path, "<root>", f"expected a mapping of job fields, got {type(data).__name__}")
    try:
        return IngestionJob.model_validate(data, context=dict(context or {}))
    except ValidationError as error:
        problems = _validation_errors(path, error)
    first = problems[0]
    if len(problems) > 1:
        first.all_errors = tuple(problems)
    raise first


def load_job(path: str | os.PathLike[str], *, context: Mapping[str, Any] | None = None) -> IngestionJob:
    """Read and validate one job file.

    :param path: the YAML file.
    :param context: validation context, e.g. ``ProviderSettings.validation_context``.
    :raises JobFileError: the file cannot be read, is not valid YAML or not a valid job
        (``all_errors`` holds every problem found).
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as error:
        raise JobFileError(path, "<file>", f"cannot read the file: {error.strerror or error}") from None
    return _parse(path, text, context)


def resolve_job(
    job: IngestionJob | str | os.PathLike[str], *, context: Mapping[str, Any] | None = None
) -> IngestionJob:
    """The job itself, or the job read from its YAML file with :func:`load_job`.

    :param context: validation context; default: the ``[sla_promotion]`` settings' (relaxed criteria).
    """
    if isinstance(job, IngestionJob):
        return job
    if context is None:
        from airflow_sla_promotion.config import load_settings

        context = load_settings().validation_context
    return load_job(job, context=context)


def load_jobs(
    jobs_folder: str | os.PathLike[str], *, context: Mapping[str, Any] | None = None
) -> tuple[dict[str, IngestionJob], list[JobFileError]]:
    """Load every job file of a folder; a broken file never hides the others.

    Job files are the folder's ``*.yaml`` files (not its subfolders); names starting with ``.`` are
    ignored, and a ``*.yml`` file is reported rather than silently skipped. A file's stem must equal its
    ``job_id``; two files declaring the same ``job_id`` are both errors.

    :returns: ``(jobs, errors)``: the valid jobs by ``job_id`` (sorted), and every problem found, by file.
    """
    folder = Path(jobs_folder)
    errors: list[JobFileError] = []
    if not folder.is_dir():
        return {}, [JobFileError(folder, "<folder>", "the jobs folder does not exist")]
    parsed: dict[Path, IngestionJob] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == ".yml":
            message = (
                f"job files are named <job_id>{JOB_FILE_SUFFIX}; rename it to {path.stem}{JOB_FILE_SUFFIX}"
            )
            errors.append(JobFileError(path, "<file>", message))
            continue
        if path.suffix != JOB_FILE_SUFFIX:
            continue
        try:
            parsed[path] = load_job(path, context=context)
        except JobFileError as error:
            errors.extend(error.all_errors)

    by_id: dict[str, list[Path]] = {}
    for path, job in parsed.items():
        by_id.setdefault(job.job_id, []).append(path)
    loaded: dict[Path, IngestionJob] = {}
    for path, job in parsed.items():
        paths = by_id[job.job_id]
        if len(paths) > 1:
            others = ", ".join(other.name for other in paths if other != path)
            errors.append(JobFileError(path, "job_id", f"duplicate job_id {job.job_id!r} (also in {others})"))
        if job.job_id != path.stem:
            message = f"{job.job_id!r} must equal the file name stem {path.stem!r}"
            errors.append(JobFileError(path, "job_id", message))
        if len(paths) == 1 and job.job_id == path.stem:
            loaded[path] = job
    jobs = {job.job_id: job for job in sorted(loaded.values(), key=lambda job: job.job_id)}
    errors.sort(key=lambda error: (str(error.path), error.field))
    return jobs, errors


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` if it is a valid job id; refuse anything else (paths, dots, separators)."""
    if (
        not isinstance(job_id, str)
        or len(job_id) > JOB_ID_MAX_LENGTH
        or not re.fullmatch(JOB_ID_PATTERN, job_id)
    ):
        raise InvalidJobIdError(
            f"invalid job id {job_id!r}: expected {JOB_ID_PATTERN}, at most {JOB_ID_MAX_LENGTH} characters"
        )
    return job_id


# --- writing -------------------------------------------------------------------------------------------


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, content: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``content``: hidden temp file in the same folder, fsync, rename, fsync folder.

    Readers see either the old or the new content, never a part; a crash leaves at most a hidden
    ``.<name>.*.tmp`` file, which the next write under the same lock removes.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            # mkstemp creates 0600; the DAG processor may run as another user and must keep reading.
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _remove_stale_temp_files(folder: Path, name: str) -> None:
    for stale in folder.glob(f".{name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _utc(moment: datetime) -> datetime:
    """A plain ``datetime`` in UTC (pendulum's subclass has no YAML representer)."""
    moment = moment.astimezone(UTC)
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=UTC,
    )


def yaml_time(moment: datetime) -> datetime:
    """A time as written into job files: UTC, whole seconds."""
    return _utc(moment).replace(microsecond=0)


def _guess_indent(text: str) -> tuple[int, int]:
    """The file's own mapping indent and block-sequence dash offset, so a rewrite keeps its layout."""
    mapping: int | None = None
    offset: int | None = None
    parent: int | None = None  # indentation of the previous line when it opened a block (``key:``)
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lead = len(line) - len(line.lstrip(" "))
        if parent is not None:
            if stripped == "-" or stripped.startswith("- "):
                offset = lead - parent if offset is None else offset
            elif mapping is None and lead > parent:
                mapping = lead - parent
        if mapping is not None and offset is not None:
            break
        parent = lead if stripped.split(" #", 1)[0].rstrip().endswith(":") else None
    return mapping or 2, max(offset or 0, 0)


def _round_trip_yaml(text: str) -> tuple[Any, CommentedMap]:
    """A ruamel round-trip loader/dumper set to the file's own indentation, and the loaded document."""
    from ruamel.yaml import YAML

    mapping, offset = _guess_indent(text)
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap a tenant's long lines
    rt.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return rt, rt.load(text)


def _dump(rt: Any, data: CommentedMap) -> bytes:
    buffer = io.StringIO()
    rt.dump(data, buffer)
    return buffer.getvalue().encode("utf-8")


def _snapshot(document: CommentedMap) -> str:
    """The document's data (keys in order, values) as text: equal snapshots mean nothing was changed."""
    return json.dumps(document, default=repr)


def _plain(value: Any) -> Any:
    """JSON-safe copy of a value for the job file (no pydantic objects, no pendulum times)."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class StoredVersion:
    """One saved previous version of a job file (the content *before* the change it records)."""

    version: str
    job_id: str
    at: datetime
    actor: str
    action: str
    reason: str | None
    from_status: str | None
    to_status: str | None
    content_path: Path
    before_sha256: str
    after_sha256: str
    #: False when the change was not completed (the writer died between saving this version and
    #: replacing the job file); the version is kept but nothing was changed.
    applied: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "reason": self.reason,
            "from_status": self.from_status,
            "to_status": self.to_status,
            "applied": self.applied,
            "details": self.details,
        }


@dataclass(frozen=True)
class StoreUpdate:
    """What ``JobConfigStore.update`` did.

    :param job: the job as it is now.
    :param changed: whether the file was rewritten (False when the change was already in place).
    :param version: name of the saved previous version when the file was rewritten.
    """

    job: IngestionJob
    changed: bool
    version: str | None = None


class JobConfigStore:
    """The job files of one jobs folder, with atomic, locked, audited rewrites and restorable history.

    Every change takes the job's lock (``.<job_id>.yaml.lock``), re-reads the file, applies the change
    to the round-trip YAML (comments and key order kept), validates the result exactly as the loader
    will read it, saves the previous content under ``.history/<job_id>/<version>.yaml`` with a
    ``<version>.json`` record (who, why, when), and atomically replaces the file. A result that fails
    validation is never written.

    :param folder: the jobs folder (must be shared and writable by every process that promotes).
    :param context: validation context, e.g. ``ProviderSettings.validation_context``.
    :param lock_timeout: seconds to wait for another writer of the same job.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        context: Mapping[str, Any] | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.folder = Path(folder)
        self.context = dict(context or {})
        self.lock_timeout = lock_timeout

    # -- paths

    def path(self, job_id: str) -> Path:
        """The job's file; the id is checked first, so no id ever names a path outside the folder."""
        return self.folder / f"{check_job_id(job_id)}{JOB_FILE_SUFFIX}"

    def history_folder(self, job_id: str) -> Path:
        return self.folder / HISTORY_FOLDER / check_job_id(job_id)

    @contextlib.contextmanager
    def lock(self, job_id: str) -> Iterator[None]:
        """Hold the job's cross-process lock."""
        from filelock import FileLock, Timeout

        lock = FileLock(
            self.folder / f".{check_job_id(job_id)}{JOB_FILE_SUFFIX}.lock", timeout=self.lock_timeout
        )
        try:
            lock.acquire()
        except Timeout:
            raise ConfigStoreError(
                f"job {job_id!r} is being changed by another process (lock not free after {self.lock_timeout} s)"
            ) from None
        except OSError as error:
            raise ConfigStoreError(f"cannot lock job {job_id!r} in {self.folder}: {error}") from None
        try:
            yield
        except OSError as error:
            # Typically a jobs folder that is not writable by this process (see docs: shared, writable).
            raise ConfigStoreError(f"cannot write job {job_id!r} in {self.folder}: {error}") from None
        finally:
            lock.release()

    # -- reading

    def read_bytes(self, job_id: str) -> bytes:
        path = self.path(job_id)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ConfigStoreError(f"no job file {path.name} in {self.folder}") from None

    def _validate(self, job_id: str, content: bytes) -> IngestionJob:
        path = self.path(job_id)
        job = _parse(path, content, self.context)
        if job.job_id != job_id:
            raise JobFileError(path, "job_id", f"{job.job_id!r} must equal the file name stem {job_id!r}")
        return job

    def load(self, job_id: str) -> IngestionJob:
        """The job, validated (the file's stem must equal its ``job_id``)."""
        return self._validate(job_id, self.read_bytes(job_id))

    # -- changing

    def update(
        self,
        job_id: str,
        mutate: Callable[[CommentedMap, IngestionJob], None],
        *,
        actor: str,
        action: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        record_unchanged: bool = False,
    ) -> StoreUpdate:
        """Change a job file under its lock, on freshly read content, and record the change.

        ``mutate(document, job)`` edits the round-trip YAML document in place; ``job`` is the validated
        current content. It may raise to refuse the change (nothing is written). When it leaves the
        content as it was, nothing is written and ``changed`` is False (unless ``record_unchanged``:
        then only the history entry is added, for bookkeeping). Otherwise an entry (``at``,
        ``action``, ``actor``, ``reason``, ``from_status``, ``to_status``, ``previous_version``,
        ``details``) is appended to ``promotion_history``.

        :raises JobFileError: the current file, or the result of the change, is not a valid job.
        :raises ConfigStoreError: the file is missing or the lock is not free in time.
        """
        now = now or datetime.now(UTC)
        with self.lock(job_id):
            _remove_stale_temp_files(self.folder, self.path(job_id).name)
            before = self.read_bytes(job_id)
            current = self._validate(job_id, before)
            rt, document = _round_trip_yaml(before.decode("utf-8"))
            snapshot = _snapshot(document)
            mutate(document, current)
            if _snapshot(document) == snapshot and not record_unchanged:
                return StoreUpdate(job=current, changed=False)

            version = self._next_version(job_id)
            entry: dict[str, Any] = {"at": yaml_time(now), "action": action, "actor": actor}
            if reason:
                entry["reason"] = reason
            entry["from_status"] = current.status
            entry["to_status"] = document.get("status", "draft")
            entry["previous_version"] = version
            if details:
                entry["details"] = _plain(dict(details))
            if document.get("promotion_history") is None:
                document["promotion_history"] = []
            document["promotion_history"].append(entry)

            after = _dump(rt, document)
            job = self._validate(job_id, after)
            self._save_version(
                job_id,
                version,
                before,
                after,
                {
                    "at": _utc(now).isoformat(),
                    "actor": actor,
                    "action": action,
                    "reason": reason,
                    "from_status": current.status,
                    "to_status": job.status,
                    "details": _plain(dict(details or {})),
                },
            )
            self._replace(job_id, after)
            return StoreUpdate(job=job, changed=True, version=version)

    def restore(
        self, job_id: str, version: str, *, actor: str, reason: str | None = None, now: datetime | None = None
    ) -> StoreUpdate:
        """Put back, byte for byte, the content saved as ``version``.

        The restore itself is recorded in the history folder (the content cannot record it without
        changing the bytes), so a restore can be undone like any other change.

        :raises ConfigStoreError: no such version, or it is not a valid job under the current settings.
        """
        with self.lock(job_id):
            return self._restore(job_id, self.version_content(job_id, version), version, actor, reason, now)

    def rollback(
        self, job_id: str, *, actor: str, reason: str | None = None, now: datetime | None = None
    ) -> StoreUpdate:
        """Undo the latest change: restore, byte for byte, the content the file had before it.

        Rolling back twice undoes the rollback (the previous content of a rollback is what it replaced).

        :raises ConfigStoreError: the file has no previous version.
        """
        with self.lock(job_id):
            current = self.read_bytes(job_id)
            for record in reversed(self.history(job_id)):
                content = record.content_path.read_bytes()
                # An unfinished change saved a version equal to the current content: skip it.
                if content != current:
                    return self._restore(job_id, content, record.version, actor, reason, now)
        raise ConfigStoreError(f"job {job_id!r} has no previous version to roll back to")

    def history(self, job_id: str) -> list[StoredVersion]:
        """Every saved previous version, oldest first, with who/why/when and whether it was applied."""
        folder = self.history_folder(job_id)
        if not folder.is_dir():
            return []
        records: list[StoredVersion] = []
        for meta_path in sorted(folder.glob("*.json")):
            version = meta_path.stem
            content_path = folder / f"{version}.yaml"
            if not _VERSION_NAME.fullmatch(version) or not content_path.is_file():
                continue
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            records.append(
                StoredVersion(
                    version=version,
                    job_id=job_id,
                    at=datetime.fromisoformat(meta["at"]),
                    actor=meta["actor"],
                    action=meta["action"],
                    reason=meta.get("reason"),
                    from_status=meta.get("from_status"),
                    to_status=meta.get("to_status"),
                    content_path=content_path,
                    before_sha256=meta["before_sha256"],
                    after_sha256=meta["after_sha256"],
                    details=meta.get("details") or {},
                )
            )
        # A change was applied iff what came next started from its result.
        current = _sha256(self.read_bytes(job_id)) if self.path(job_id).is_file() else None
        result: list[StoredVersion] = []
        for index, record in enumerate(records):
            following = records[index + 1].before_sha256 if index + 1 < len(records) else current
            applied = following == record.after_sha256
            result.append(record if applied else replace(record, applied=False))
        return result

    def version_content(self, job_id: str, version: str) -> bytes:
        """The saved content of one version."""
        if not _VERSION_NAME.fullmatch(version):
            raise ConfigStoreError(f"invalid version name {version!r}")
        try:
            return (self.history_folder(job_id) / f"{version}.yaml").read_bytes()
        except FileNotFoundError:
            raise ConfigStoreError(f"job {job_id!r} has no saved version {version!r}") from None

    # -- internals (called under the job's lock)

    def _restore(
        self,
        job_id: str,
        target: bytes,
        version: str,
        actor: str,
        reason: str | None,
        now: datetime | None,
    ) -> StoreUpdate:
        _remove_stale_temp_files(self.folder, self.path(job_id).name)
        before = self.read_bytes(job_id)
        job = self._validate(job_id, target)
        if target == before:
            return StoreUpdate(job=job, changed=False)
        try:
            from_status: str | None = self._validate(job_id, before).status
        except JobFileError:
            from_status = None  # restoring over a hand-broken file is how it gets repaired
        new_version = self._next_version(job_id)
        meta = {
            "at": _utc(now or datetime.now(UTC)).isoformat(),
            "actor": actor,
            "action": "restore",
            "reason": reason,
            "from_status": from_status,
            "to_status": job.status,
            "details": {"restored_version": version},
        }
        self._save_version(job_id, new_version, before, target, meta)
        self._replace(job_id, target)
        return StoreUpdate(job=job, changed=True, version=new_version)

    def _next_version(self, job_id: str) -> str:
        folder = self.history_folder(job_id)
        numbers = [int(path.stem) for path in folder.glob("*.*") if _VERSION_NAME.fullmatch(path.stem)]
        return f"{max(numbers, default=0) + 1:0{_VERSION_DIGITS}d}"

    def _save_version(
        self, job_id: str, version: str, before: bytes, after: bytes, meta: dict[str, Any]
    ) -> None:
        folder = self.history_folder(job_id)
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_folder(folder.parent)
            _fsync_folder(self.folder)
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        mode = self._mode(job_id)
        _atomic_write(folder / f"{version}.yaml", before, mode=mode)
        record = {
            "version": version,
            **meta,
            "before_sha256": _sha256(before),
            "after_sha256": _sha256(after),
        }
        _atomic_write(
            folder / f"{version}.json", (json.dumps(record, indent=2) + "\n").encode("utf-8"), mode=mode
        )

    def _mode(self, job_id: str) -> int:
        try:
            return self.path(job_id).stat().st_mode & 0o777
        except FileNotFoundError:
            return 0o644

    def _replace(self, job_id: str, content: bytes) -> None:
        _atomic_write(self.path(job_id), content, mode=self._mode(job_id))
