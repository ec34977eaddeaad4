"""Tests of config_store: loading a jobs folder, locked atomic rewrites, history and rollback."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from airflow_sla_promotion.config_store import (
    ConfigStoreError,
    InvalidJobIdError,
    JobConfigStore,
    JobFileError,
    load_job,
    load_jobs,
)

if TYPE_CHECKING:
    from pathlib import Path

JOB = """\
# Orders ingestion; owned by the orders team.
job_id: {job_id}
job_name: Orders   # shown in the UI
tenant: orders
image: registry.example.com/orders/ingest:1.4
schedule_config:
  cron: "0 2 * * *"   # nightly
resource_requirements:
  cpu_cores: 2
  memory_gb: 4   # measured on the old system
  estimated_runtime_minutes: 30
cmds:
    - python
    - -m
    - ingest
"""

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def write_job(folder: Path, job_id: str = "orders", text: str | None = None, name: str | None = None) -> Path:
    path = folder / (name or f"{job_id}.yaml")
    path.write_text(text if text is not None else JOB.format(job_id=job_id))
    return path


def promote(document, job) -> None:  # type: ignore[no-untyped-def]
    document["status"] = "active"
    document["namespace"] = "prod-ingestion-ns"
    document["resource_requirements"]["cpu_cores"] = 1.5


# --- load_job / load_jobs ------------------------------------------------------------------------------


def test_load_jobs_reports_every_broken_file_without_hiding_the_valid_ones(tmp_path: Path) -> None:
    write_job(tmp_path, "orders")
    write_job(tmp_path, "customers")
    write_job(tmp_path, name="broken-yaml.yaml", text="job_id: [unclosed\n")
    write_job(
        tmp_path,
        name="bad-cpu.yaml",
        text=JOB.format(job_id="bad-cpu").replace("cpu_cores: 2", "cpu_cores: -1"),
    )
    write_job(tmp_path, name="typo.yaml", text=JOB.format(job_id="typo") + "scheduel: daily\n")
    write_job(tmp_path, name="wrong-stem.yaml", text=JOB.format(job_id="other"))

    jobs, errors = load_jobs(tmp_path)

    assert list(jobs) == ["customers", "orders"]
    found = {(error.path.name, error.field) for error in errors}
    assert found == {
        ("bad-cpu.yaml", "resource_requirements.cpu_cores"),
        ("broken-yaml.yaml", "<yaml>"),
        ("typo.yaml", "scheduel"),
        ("wrong-stem.yaml", "job_id"),
    }


def test_job_file_error_names_file_field_and_message(tmp_path: Path) -> None:
    path = write_job(tmp_path, text=JOB.format(job_id="orders").replace("cpu_cores: 2", "cpu_cores: many"))
    with pytest.raises(JobFileError) as raised:
        load_job(path)
    assert raised.value.field == "resource_requirements.cpu_cores"
    assert str(raised.value).startswith(f"{path}: resource_requirements.cpu_cores: ")


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write_job(tmp_path, text="job_id: orders\njob_name: [a\n")
    with pytest.raises(JobFileError) as raised:
        load_job(path)
    assert raised.value.field == "<yaml>"
    assert raised.value.message.startswith("line 3, column 1:")


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write_job(tmp_path, text=JOB.format(job_id="orders") + "tenant: someone-else\n")
    with pytest.raises(JobFileError, match="duplicate key 'tenant'"):
        load_job(path)


def test_all_validation_errors_of_one_file_are_reported(tmp_path: Path) -> None:
    text = JOB.format(job_id="orders").replace("cpu_cores: 2", "cpu_cores: 0").replace("tenant: orders\n", "")
    write_job(tmp_path, text=text)
    _, errors = load_jobs(tmp_path)
    assert {error.field for error in errors} == {"tenant", "resource_requirements.cpu_cores"}


@pytest.mark.parametrize(
    ("text", "message"), [("", "the file is empty"), ("- a\n- b\n", "expected a mapping of job fields")]
)
def test_not_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(JobFileError, match=message):
        load_job(write_job(tmp_path, text=text))


def test_duplicate_job_ids_are_errors_in_both_files(tmp_path: Path) -> None:
    write_job(tmp_path, "orders")
    write_job(tmp_path, name="orders-copy.yaml", text=JOB.format(job_id="orders"))
    jobs, errors = load_jobs(tmp_path)
    assert jobs == {}
    duplicates = {error.path.name for error in errors if "duplicate job_id" in error.message}
    assert duplicates == {"orders.yaml", "orders-copy.yaml"}
    assert {error.path.name for error in errors if "file name stem" in error.message} == {"orders-copy.yaml"}


def test_dotfiles_history_and_other_files_are_ignored_and_yml_is_reported(tmp_path: Path) -> None:
    write_job(tmp_path, "orders")
    write_job(tmp_path, name=".orders.yaml.abc123.tmp", text="half a fi")
    write_job(tmp_path, name=".hidden.yaml", text="not: a job")
    write_job(tmp_path, name="README.md", text="# jobs")
    write_job(tmp_path, name="customers.yml", text=JOB.format(job_id="customers"))
    (tmp_path / ".history" / "orders").mkdir(parents=True)
    write_job(tmp_path / ".history" / "orders", name="000001.yaml", text="junk: [")

    jobs, errors = load_jobs(tmp_path)

    assert list(jobs) == ["orders"]
    assert [(error.path.name, error.field) for error in errors] == [("customers.yml", "<file>")]


def test_relaxed_criteria_need_the_context(tmp_path: Path) -> None:
    path = write_job(tmp_path, text=JOB.format(job_id="orders") + "promotion:\n  min_successful_runs: 1\n")
    with pytest.raises(JobFileError) as raised:
        load_job(path)
    assert raised.value.field == "promotion.min_successful_runs"
    # The message is the validator's own words, without pydantic's "Value error, " prefix.
    assert raised.value.message.startswith("1 relaxes the provider's criterion")
    assert load_job(path, context={"allow_relaxed_criteria": True}).promotion.min_successful_runs == 1


# --- rewrites ------------------------------------------------------------------------------------------


def test_update_keeps_comments_quotes_key_order_and_indentation(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    before = path.read_text()

    JobConfigStore(tmp_path).update("orders", promote, actor="alice", action="promote", reason="go", now=NOW)

    after = path.read_text()
    # Only the edited value changed; everything the tenant wrote stays where it was.
    expected = before.replace("cpu_cores: 2", "cpu_cores: 1.5")
    assert after.startswith(expected)
    added = after[len(expected) :]
    assert added.splitlines()[:3] == ["status: active", "namespace: prod-ingestion-ns", "promotion_history:"]


def test_update_records_history_entry_and_saves_previous_version(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    original = path.read_bytes()
    store = JobConfigStore(tmp_path)

    result = store.update("orders", promote, actor="alice", action="promote", reason="go", now=NOW)

    assert result.changed
    assert result.job.status == "active"
    [entry] = result.job.promotion_history
    assert (entry.actor, entry.action, entry.reason, entry.at) == ("alice", "promote", "go", NOW)
    assert (entry.from_status, entry.to_status, entry.previous_version) == ("draft", "active", result.version)
    assert store.version_content("orders", result.version) == original
    [record] = store.history("orders")
    assert (record.version, record.actor, record.action, record.applied) == (
        result.version,
        "alice",
        "promote",
        True,
    )
    assert load_job(path) == result.job


def test_unchanged_content_is_not_written(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    store = JobConfigStore(tmp_path)
    store.update("orders", promote, actor="alice", action="promote", now=NOW)
    content = path.read_bytes()

    result = store.update("orders", promote, actor="bob", action="promote", now=NOW)

    assert not result.changed
    assert path.read_bytes() == content
    assert len(store.history("orders")) == 1


def test_invalid_result_is_never_written(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    original = path.read_bytes()
    store = JobConfigStore(tmp_path)

    def break_it(document, job) -> None:  # type: ignore[no-untyped-def]
        document["resource_requirements"]["memory_gb"] = -4

    with pytest.raises(JobFileError) as raised:
        store.update("orders", break_it, actor="alice", action="edit")
    assert raised.value.field == "resource_requirements.memory_gb"
    assert path.read_bytes() == original
    assert store.history("orders") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".orders.yaml.lock", "orders.yaml"]


def test_a_refusing_mutation_writes_nothing(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    original = path.read_bytes()

    def refuse(document, job) -> None:  # type: ignore[no-untyped-def]
        document["status"] = "active"
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        JobConfigStore(tmp_path).update("orders", refuse, actor="alice", action="edit")
    assert path.read_bytes() == original


def test_rewrite_keeps_the_file_mode(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    path.chmod(0o644)
    JobConfigStore(tmp_path).update("orders", promote, actor="alice", action="promote")
    assert path.stat().st_mode & 0o777 == 0o644


def test_stale_temp_files_are_removed_by_the_next_write(tmp_path: Path) -> None:
    write_job(tmp_path)
    stale = tmp_path / ".orders.yaml.k2j3h4.tmp"
    stale.write_text("half a fi")
    JobConfigStore(tmp_path).update("orders", promote, actor="alice", action="promote")
    assert not stale.exists()


@pytest.mark.parametrize(
    "job_id", ["../orders", "a/b", "/etc/passwd", "Orders", "orders.yaml", "", "a__b", "x" * 64]
)
def test_path_like_job_ids_are_refused(tmp_path: Path, job_id: str) -> None:
    write_job(tmp_path)
    store = JobConfigStore(tmp_path)
    with pytest.raises(InvalidJobIdError):
        store.path(job_id)
    with pytest.raises(InvalidJobIdError):
        store.update(job_id, promote, actor="alice", action="promote")
    with pytest.raises(InvalidJobIdError):
        store.rollback(job_id, actor="alice")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orders.yaml"]


def test_a_file_whose_job_id_differs_from_its_name_is_refused(tmp_path: Path) -> None:
    write_job(tmp_path, name="orders.yaml", text=JOB.format(job_id="customers"))
    with pytest.raises(JobFileError, match="must equal the file name stem"):
        JobConfigStore(tmp_path).update("orders", promote, actor="alice", action="promote")


def test_missing_job_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigStoreError, match=r"no job file orders\.yaml"):
        JobConfigStore(tmp_path).load("orders")


# --- rollback and history ------------------------------------------------------------------------------


def test_rollback_restores_the_previous_content_byte_for_byte(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    original = path.read_bytes()
    store = JobConfigStore(tmp_path)
    store.update("orders", promote, actor="alice", action="promote")
    promoted = path.read_bytes()

    result = store.rollback("orders", actor="bob", reason="too early")

    assert result.changed
    assert result.job.status == "draft"
    assert path.read_bytes() == original
    # The rollback is itself recorded and can be undone.
    assert [(r.action, r.actor, r.reason) for r in store.history("orders")] == [
        ("promote", "alice", None),
        ("restore", "bob", "too early"),
    ]
    store.rollback("orders", actor="bob")
    assert path.read_bytes() == promoted


def test_any_version_can_be_restored(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    store = JobConfigStore(tmp_path)
    contents = [path.read_bytes()]
    for cores in (3, 4, 5):

        def set_cores(document, job, cores: int = cores) -> None:  # type: ignore[no-untyped-def]
            document["resource_requirements"]["cpu_cores"] = cores

        store.update("orders", set_cores, actor="alice", action="resize")
        contents.append(path.read_bytes())

    versions = [record.version for record in store.history("orders")]
    store.restore("orders", versions[1], actor="bob")
    assert path.read_bytes() == contents[1]
    with pytest.raises(ConfigStoreError, match="no saved version"):
        store.restore("orders", "000099", actor="bob")
    with pytest.raises(ConfigStoreError, match="invalid version name"):
        store.restore("orders", "../../orders", actor="bob")


def test_rollback_without_history_is_refused(tmp_path: Path) -> None:
    write_job(tmp_path)
    with pytest.raises(ConfigStoreError, match="no previous version"):
        JobConfigStore(tmp_path).rollback("orders", actor="bob")


def test_rollback_repairs_a_hand_broken_file(tmp_path: Path) -> None:
    path = write_job(tmp_path)
    store = JobConfigStore(tmp_path)
    store.update("orders", promote, actor="alice", action="promote")
    promoted = path.read_bytes()
    store.update("orders", lambda d, j: d.__setitem__("owner", "team"), actor="alice", action="edit")
    path.write_text("job_id: [broken")

    # The latest saved version is the promoted content (before the 'edit').
    store.rollback("orders", actor="bob")
    assert path.read_bytes() == promoted


def test_an_unfinished_change_is_marked_and_skipped_by_rollback(tmp_path: Path) -> None:
    """A writer that died after saving the previous version but before replacing the file."""
    path = write_job(tmp_path)
    original = path.read_bytes()
    store = JobConfigStore(tmp_path)
    store.update("orders", promote, actor="alice", action="promote")
    promoted = path.read_bytes()
    store.update("orders", lambda d, j: d.__setitem__("owner", "team"), actor="alice", action="edit")
    edited = path.read_bytes()
    path.write_bytes(promoted)  # as if the 'edit' never replaced the file

    history = store.history("orders")
    assert [record.applied for record in history] == [True, False]

    store.rollback("orders", actor="bob")
    assert path.read_bytes() == original
    assert edited != original


def test_history_records_are_json_with_hashes(tmp_path: Path) -> None:
    write_job(tmp_path)
    store = JobConfigStore(tmp_path)
    result = store.update("orders", promote, actor="alice", action="promote", details={"why": ["a", 1]})
    meta = json.loads((store.history_folder("orders") / f"{result.version}.json").read_text())
    assert meta["details"] == {"why": ["a", 1]}
    assert len(meta["before_sha256"]) == len(meta["after_sha256"]) == 64


def test_lock_timeout_is_a_clear_error(tmp_path: Path) -> None:
    from filelock import FileLock

    write_job(tmp_path)
    with FileLock(tmp_path / ".orders.yaml.lock"):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child process
            code = 1
            try:
                JobConfigStore(tmp_path, lock_timeout=0.2).update(
                    "orders", promote, actor="a", action="promote"
                )
            except ConfigStoreError as error:
                code = 0 if "being changed by another process" in str(error) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
