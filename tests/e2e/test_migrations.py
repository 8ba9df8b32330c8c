"""`harsha migrate status|validate|verify` against a copy of the running
mesh's databases (taken with SQLite's online backup, as an operator would):
every migration is applied and the data keeps every invariant; a migration
file edited after it was applied, and a batch whose balance no longer
matches its movements, are caught and named, with a non-zero exit."""

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import harsha_binary

ROLES = ("erp", "gateway", "sync")


def copy_databases(mesh, into: Path) -> dict:
    """Consistent copies of the mesh's three SQLite files."""
    into.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for role in ROLES:
        source = sqlite3.connect(f"file:{mesh.data_dir / f'{role}.sqlite'}?mode=ro", uri=True)
        target = sqlite3.connect(into / f"{role}.sqlite")
        with target:
            source.backup(target)
        source.close()
        target.close()
        env[f"HARSHA__DATABASES__{role.upper()}"] = f"sqlite://{into / f'{role}.sqlite'}"
    return env


def migrate(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([harsha_binary(), "migrate", *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture()
def copied(mesh, tmp_path):
    return tmp_path, copy_databases(mesh, tmp_path / "copy")


def test_status_lists_every_migration_applied_and_validate_passes(copied):
    _, env = copied
    status = migrate(env, "status")
    assert status.returncode == 0, status.stderr
    for role in ROLES:
        assert f"{role} (SQLite): " in status.stdout and ", 0 pending" in status.stdout
    assert "20261201000005 orders" in status.stdout and "applied  20" in status.stdout
    assert "EDITED" not in status.stdout
    validate = migrate(env, "validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_verify_finds_the_live_data_whole_with_row_counts(copied):
    _, env = copied
    verify = migrate(env, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "ok  a customer has at most one open primary segment" in verify.stdout
    assert "ok  a batch's available and reserved quantities equal the sums of its movements" in verify.stdout
    assert "ok  a refresh-token family has at most one live token" in verify.stdout
    counts = {line.split(None, 1)[1]: int(line.split(None, 1)[0]) for line in verify.stdout.splitlines()
              if line.strip() and line.split(None, 1)[0].isdigit()}
    assert counts["tabHD Customer Segment"] > 0 and counts["api_users"] > 0


def test_an_edited_migration_is_caught_and_stops_up(copied):
    path, env = copied
    with sqlite3.connect(path / "copy" / "erp.sqlite") as db:
        db.execute("UPDATE _harsha_migrations_erp SET checksum = X'00' WHERE version = 20261126000003")
    validate = migrate(env, "validate", "--role", "erp")
    assert validate.returncode != 0
    assert "20261126000003" in validate.stdout and "EDITED" in validate.stdout
    assert "erp migration 20261126000003" in validate.stderr
    up = migrate(env, "--role", "erp")
    assert up.returncode != 0
    assert "20261126000003" in up.stderr, up.stderr


def test_a_broken_invariant_fails_verify_naming_it(copied):
    path, env = copied
    with sqlite3.connect(path / "copy" / "erp.sqlite") as db:
        changed = db.execute(
            "UPDATE `tabHD Batch Master` SET available_qty = available_qty + 1 "
            "WHERE name = (SELECT MIN(name) FROM `tabHD Batch Master`)").rowcount
    assert changed == 1
    verify = migrate(env, "verify", "--role", "erp")
    assert verify.returncode != 0
    assert "BROKEN by 1  a batch's available and reserved quantities equal the sums of its movements" in verify.stdout
    assert "(1 violations)" in verify.stderr


def test_a_backup_taken_while_running_restores_what_it_held_and_verifies(tmp_path_factory):
    import grpc

    from conftest import start_mesh, stop_mesh
    from harsha.customer.v1 import customer_pb2 as pb, customer_pb2_grpc

    data = tmp_path_factory.mktemp("harsha-restore")
    backup = tmp_path_factory.mktemp("harsha-backup") / "copy"
    env = dict(os.environ)

    def create(mesh, code):
        with mesh.channel("customer") as channel:
            customer_pb2_grpc.CustomerServiceStub(channel).CreateSegment(
                pb.CreateSegmentRequest(segment=pb.Segment(code=code, segment_name=f"segment {code}")))

    first = start_mesh(data)
    try:
        create(first, "KEPT-1")
        taken = subprocess.run([harsha_binary(), "backup", str(backup), "--data-dir", str(data)], env=env,
                               capture_output=True, text=True, timeout=60)
        assert taken.returncode == 0, taken.stderr
        assert "backup complete" in taken.stdout
        create(first, "LOST-2")
        refused = subprocess.run([harsha_binary(), "restore", str(backup), "--data-dir", str(data)], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "stop the mesh" in refused.stderr
        password = first.admin_password()
    finally:
        assert stop_mesh(first) == 0

    restored = subprocess.run([harsha_binary(), "restore", str(backup), "--data-dir", str(data)], env=env,
                              capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0, restored.stderr
    for role in ROLES:
        env[f"HARSHA__DATABASES__{role.upper()}"] = f"sqlite://{data / f'{role}.sqlite'}"
    verify = migrate(env, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    second = start_mesh(data)
    second.known_admin_password = password
    try:
        with second.channel("customer") as channel:
            stub = customer_pb2_grpc.CustomerServiceStub(channel)
            assert stub.GetSegment(pb.GetSegmentRequest(code="KEPT-1")).segment.segment_name == "segment KEPT-1"
            with pytest.raises(grpc.RpcError) as lost:
                stub.GetSegment(pb.GetSegmentRequest(code="LOST-2"))
            assert lost.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        assert stop_mesh(second) == 0
