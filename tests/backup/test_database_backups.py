"""Backups of the production databases (docs/backup.md), by real round trips.

MariaDB (erp): a database on the shared server gets rows, then a full backup,
more rows and a first incremental, a new table and more changes and a second
incremental, then rows the backups must not have. scripts/backup_mariadb.sh
prepares the full backup with both incrementals and copies it into an empty
data directory, and a second, throwaway mariadbd (another port and socket)
serves it: every change up to the second incremental is there, the later rows
are not. The scheduled layout (daily chain, hourly incrementals, pruning) is
checked with real backups too.

PostgreSQL (gateway, sync): base backups with pg_basebackup need a replication
connection. When the shared server's pg_hba.conf admits one from 127.0.0.1 the
base-backup round trip backs it up; otherwise (and always for archiving,
point-in-time recovery and standbys, which need server settings) the tests use
throwaway clusters made with initdb on other ports, as the postgres user. A
base backup is verified (and a damaged copy is not), restored and started as
another server; a point-in-time recovery from the WAL archive stops before
later commits; a standby made with scripts/backup_postgres.sh streams from its
primary and takes writes once promoted.

The tests run as root (runuser, chown); a missing program fails the test with
the Debian package to install. Everything they create is removed again.
"""

import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARIADB_SH = ROOT / "scripts" / "backup_mariadb.sh"
POSTGRES_SH = ROOT / "scripts" / "backup_postgres.sh"

MARIADB_HOST = os.environ.get("MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = os.environ.get("MARIADB_PORT", "3306")
MARIADB_USER = os.environ.get("MARIADB_USER", "root")
SHARED_PG_PORT = int(os.environ.get("PGPORT", "5432"))


# ---------------------------------------------------------------- helpers


def need(program, package):
    """The path of PROGRAM, or the test fails naming the Debian package that has it."""
    path = program if os.path.isabs(program) else shutil.which(program)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{program} is missing: install the Debian package {package} (apt-get install {package})")
    return path


def need_root():
    if os.geteuid() != 0:
        pytest.fail("these tests run as root: they start servers as the mysql and postgres users (runuser, chown)")
    need("runuser", "util-linux")
    need("flock", "util-linux")


def run(cmd, *, env=None, check=True, timeout=600, user=None):
    """Runs CMD (as USER with runuser), returning the completed process; a failure shows its output."""
    cmd = [str(c) for c in cmd]
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    full_env = dict(os.environ, **(env or {}))
    done = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, probe, timeout=60, interval=0.3):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def work():
    """A scratch directory the mysql and postgres users can traverse; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="harsha-backup-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def owned_dir(path, user):
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, user, user)
    path.chmod(0o700)
    return path


def unique_db_name():
    return f"harsha_backup_test_{secrets.token_hex(4)}"


# ---------------------------------------------------------------- MariaDB


def mariadb_env():
    env = {"MARIADB_HOST": MARIADB_HOST, "MARIADB_PORT": MARIADB_PORT, "MARIADB_USER": MARIADB_USER}
    if "MARIADB_PASSWORD" in os.environ:
        env["MARIADB_PASSWORD"] = os.environ["MARIADB_PASSWORD"]
    return env


def mariadb_shared(sql):
    """SQL on the shared server; returns the rows as lists of strings."""
    cmd = [need("mariadb", "mariadb-client-core"), "--no-defaults", "-N", "-B",
           "-h", MARIADB_HOST, "-P", MARIADB_PORT, "-u", MARIADB_USER, "-e", sql]
    env = {"MYSQL_PWD": os.environ["MARIADB_PASSWORD"]} if os.environ.get("MARIADB_PASSWORD") else None
    out = run(cmd, env=env).stdout
    return [line.split("\t") for line in out.splitlines()]


def mariadb_tools():
    need_root()
    need("mariabackup", "mariadb-backup")
    need("mariadb", "mariadb-client-core")
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    need(mariadbd, "mariadb-server-core")
    try:
        mariadb_shared("SELECT 1")
    except BaseException as err:  # pytest.fail raises outside Exception
        pytest.fail(f"the shared MariaDB server at {MARIADB_HOST}:{MARIADB_PORT} does not answer: {err}")
    return mariadbd


def mariadb_script(*args, check=True):
    return run([MARIADB_SH, *args], env=mariadb_env(), check=check)


def checkpoints(backup):
    text = (backup / "xtrabackup_checkpoints").read_text()
    return dict(re.findall(r"^(\w+) = (\S*)", text, re.M))


class ThrowawayMariaDB:
    """A second mariadbd on a copy of a data directory: its own port and socket, no grants."""

    def __init__(self, mariadbd, datadir, rundir):
        self.mariadbd, self.datadir, self.rundir = mariadbd, datadir, rundir
        self.socket = rundir / "mysqld.sock"
        self.port = free_port()
        self.log = rundir / "mysqld.err"
        self.proc = None

    def __enter__(self):
        owned_dir(self.rundir, "mysql")
        for attempt in range(3):
            self.proc = subprocess.Popen(
                [self.mariadbd, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
                 "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.rundir}/mysqld.pid",
                 f"--log-error={self.log}", f"--tmpdir={self.rundir}", "--user=mysql", "--skip-grant-tables",
                 "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--skip-slave-start"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def ready():
                return self.proc.poll() is not None or self.sql("SELECT 1", check=False) is not None

            wait_for("the throwaway mariadbd", ready, timeout=120)
            if self.proc.poll() is None:
                return self
            if "Bind on TCP/IP port" not in self.log_tail() or attempt == 2:
                pytest.fail(f"the throwaway mariadbd exited {self.proc.returncode}:\n{self.log_tail()}")
            self.port = free_port()  # taken meanwhile by someone else: another one

    def sql(self, sql, check=True):
        done = run(["mariadb", "--no-defaults", "-N", "-B", "-S", self.socket, "-u", "root", "-e", sql],
                   check=check)
        if done.returncode != 0:
            return None
        return [line.split("\t") for line in done.stdout.splitlines()]

    def log_tail(self):
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.sql("SHUTDOWN", check=False)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


def test_mariadb_full_and_incrementals_restore_on_a_second_server(work):
    mariadbd = mariadb_tools()
    db = unique_db_name()
    try:
        mariadb_shared(
            f"CREATE DATABASE {db}; "
            f"CREATE TABLE {db}.orders (id INT PRIMARY KEY, phase VARCHAR(40)) ENGINE=InnoDB; "
            f"INSERT INTO {db}.orders VALUES (1, 'full'), (2, 'full'), (3, 'full')")
        mariadb_script("full", work / "full")

        mariadb_shared(
            f"INSERT INTO {db}.orders VALUES (4, 'inc1'), (5, 'inc1'); "
            f"UPDATE {db}.orders SET phase = 'full, updated before inc1' WHERE id = 1")
        mariadb_script("incremental", work / "inc1", work / "full")

        mariadb_shared(
            f"CREATE TABLE {db}.batches (code VARCHAR(20) PRIMARY KEY) ENGINE=InnoDB; "
            f"INSERT INTO {db}.batches VALUES ('B-1'), ('B-2'); "
            f"INSERT INTO {db}.orders VALUES (6, 'inc2'); DELETE FROM {db}.orders WHERE id = 2")
        mariadb_script("incremental", work / "inc2", work / "inc1")  # against the last incremental

        mariadb_shared(f"INSERT INTO {db}.orders VALUES (7, 'after the last backup')")

        assert checkpoints(work / "full")["backup_type"] == "full-backuped"
        assert checkpoints(work / "inc2")["backup_type"] == "incremental"

        # Incrementals out of order are refused before anything changes.
        refused = mariadb_script("prepare", work / "full", work / "inc2", work / "inc1", check=False)
        assert refused.returncode != 0 and "does not follow" in refused.stderr, refused.stderr
        assert checkpoints(work / "full")["backup_type"] == "full-backuped"

        mariadb_script("prepare", work / "full", work / "inc1", work / "inc2")
        assert checkpoints(work / "full")["backup_type"] in ("log-applied", "full-prepared")
        # The incrementals were applied from copies: they still hold their page deltas.
        for inc in ("inc1", "inc2"):
            metas = list((work / inc).rglob("*.meta"))
            assert metas and all(m.with_suffix(".delta").exists() for m in metas), inc
        again = mariadb_script("prepare", work / "full", work / "inc1", check=False)
        assert again.returncode != 0 and "already prepared" in again.stderr, again.stderr

        # restore fills only an empty data directory.
        busy = work / "busy"
        busy.mkdir()
        (busy / "ibdata1").write_text("in use")
        refused = mariadb_script("restore", work / "full", busy, check=False)
        assert refused.returncode != 0 and "not empty" in refused.stderr, refused.stderr
        assert (busy / "ibdata1").read_text() == "in use"

        datadir = work / "datadir"
        mariadb_script("restore", work / "full", datadir)
        assert datadir.stat().st_uid == pwd.getpwnam("mysql").pw_uid

        with ThrowawayMariaDB(mariadbd, datadir, work / "run") as restored:
            rows = restored.sql(f"SELECT id, phase FROM {db}.orders ORDER BY id")
            assert rows == [["1", "full, updated before inc1"], ["3", "full"], ["4", "inc1"], ["5", "inc1"],
                            ["6", "inc2"]], restored.log_tail()
            assert restored.sql(f"SELECT code FROM {db}.batches ORDER BY code") == [["B-1"], ["B-2"]]
            assert restored.sql(f"CHECK TABLE {db}.orders, {db}.batches")[-1][-1] == "OK"
    finally:
        mariadb_shared(f"DROP DATABASE IF EXISTS {db}")
    assert mariadb_shared(f"SHOW DATABASES LIKE '{db}'") == []


def test_mariadb_scheduled_chains_and_pruning(work):
    mariadb_tools()
    root = work / "mariadb"

    first = mariadb_script("hourly", root)  # no full backup yet: takes one
    assert "no full backup" in first.stderr
    chains = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(chains) == 1 and (chains[0] / "full").is_dir()
    time.sleep(1.1)  # the incrementals are named by the second
    mariadb_script("hourly", root)
    time.sleep(1.1)
    mariadb_script("hourly", root)
    incs = sorted(chains[0].glob("inc-*"))
    assert len(incs) == 2
    info = [(inc / "xtrabackup_info").read_text() for inc in incs]
    assert f"--incremental-basedir={chains[0] / 'full'}" in info[0]
    assert f"--incremental-basedir={incs[0]}" in info[1]  # the second builds on the first

    time.sleep(1.1)
    mariadb_script("daily", root)
    chains = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(chains) == 2 and not list(chains[1].glob("inc-*"))
    mariadb_script("hourly", root)
    assert len(list(chains[1].glob("inc-*"))) == 1  # hourly goes on the newest chain

    # Pruning keeps every chain that restores an hour of the last DAYS days.
    for old in ("20000101T020000Z", "20000102T020000Z"):
        (root / old / "full").mkdir(parents=True)
    (root / "20000103T020000Z").mkdir()  # a daily run that died before its full backup
    (chains[1] / "inc-20000101T000000Z.partial-1").mkdir()
    mariadb_script("prune", root, "7")
    left = sorted(p.name for p in root.iterdir() if p.is_dir())
    # 2000-01-01 goes (2000-01-02 replaces it, long ago); 2000-01-02 restores the
    # hours until the next chain, which started within the last 7 days, so it stays.
    assert left == ["20000102T020000Z", chains[0].name, chains[1].name]
    assert not list(chains[1].glob("*.partial-*"))

    cron = mariadb_script("cron", "/var/backups/harsha/mariadb", "14").stdout
    jobs = [line.split(None, 6) for line in cron.splitlines() if line and line[0].isdigit()]
    assert [job[:6] for job in jobs] == [["0", "2", "*", "*", "*", "root"], ["0", "0-1,3-23", "*", "*", "*", "root"]]
    assert f"{MARIADB_SH} daily /var/backups/harsha/mariadb" in jobs[0][6]
    assert f"{MARIADB_SH} prune /var/backups/harsha/mariadb 14" in jobs[0][6]
    assert f"{MARIADB_SH} hourly /var/backups/harsha/mariadb" in jobs[1][6]


# ---------------------------------------------------------------- PostgreSQL


def pg_bindir():
    versions = sorted((p for p in Path("/usr/lib/postgresql").glob("*/bin")),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not versions:
        pytest.fail("PostgreSQL is missing: install the Debian packages postgresql-15 and postgresql-client-15")
    return versions[-1]


def pg_tools():
    need_root()
    bindir = pg_bindir()
    version = bindir.parent.name
    for program in ("initdb", "pg_ctl", "postgres"):
        need(str(bindir / program), f"postgresql-{version}")
    for program in ("pg_basebackup", "pg_verifybackup", "pg_waldump", "pg_archivecleanup", "psql"):
        need(str(bindir / program), f"postgresql-client-{version}")
    return bindir


def pg_env(port):
    return {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres"}


def psql(bindir, port, sql, db="postgres", check=True):
    done = run([bindir / "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", port, "-U", "postgres", "-d", db, "-c", sql], check=check)
    if done.returncode != 0:
        return None
    return [line.split("|") for line in done.stdout.splitlines()]


def pg_script(*args, port, check=True):
    return run([POSTGRES_SH, *args], env=pg_env(port), check=check)


class PgServer:
    """A postgres the test starts on a data directory of its own, on another port."""

    def __init__(self, bindir, datadir, rundir):
        self.bindir, self.datadir, self.rundir = bindir, datadir, rundir
        self.port = free_port()
        self.log = rundir / "postgres.log"
        self.started = False

    @classmethod
    def initdb(cls, bindir, work, name, conf=""):
        datadir = owned_dir(work / name, "postgres")
        run([bindir / "initdb", "-D", datadir, "-U", "postgres", "--auth=trust", "--data-checksums",
             "--no-sync"], user="postgres")
        with open(datadir / "postgresql.conf", "a") as f:
            f.write("\n# test cluster\nwal_level = replica\nmax_wal_senders = 5\nshared_buffers = 16MB\n" + conf)
        return cls(bindir, datadir, work / f"{name}-run")

    def start(self, *settings):
        owned_dir(self.rundir, "postgres")
        for attempt in range(3):
            options = [f"-p {self.port}", "-c listen_addresses=127.0.0.1",
                       f"-c unix_socket_directories={self.rundir}"] + [f"-c {s}" for s in settings]
            done = run([self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.log, "-w", "-t", "120",
                        "-o", " ".join(options), "start"], user="postgres", check=False)
            self.started = True
            if done.returncode == 0:
                return self
            if "could not bind" not in self.log_tail() or attempt == 2:
                pytest.fail(f"postgres on {self.datadir} did not start:\n{done.stderr}\n{self.log_tail()}")
            self.port = free_port()  # taken meanwhile by someone else: another one

    def sql(self, sql, db="postgres", check=True):
        return psql(self.bindir, self.port, sql, db, check)

    def log_tail(self):
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"

    def stop(self):
        if self.started and (self.datadir / "postmaster.pid").exists():
            done = run([self.bindir / "pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "-t", "60", "stop"],
                       user="postgres", check=False)
            if done.returncode != 0:
                run([self.bindir / "pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop"],
                    user="postgres", check=False)
        self.started = False


def shared_allows_replication(bindir):
    done = run([bindir / "psql", "-X", "-A", "-t",
                f"host=127.0.0.1 port={SHARED_PG_PORT} user=postgres dbname=postgres replication=true",
                "-c", "IDENTIFY_SYSTEM"], check=False, timeout=30)
    return done.returncode == 0


def minimal_config(datadir):
    """A restored Debian cluster's backup has no configuration files (they live in /etc)."""
    if not (datadir / "postgresql.conf").exists():
        (datadir / "postgresql.conf").write_text("max_connections = 20\nshared_buffers = 16MB\n")
        (datadir / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        (datadir / "pg_ident.conf").write_text("")
        for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
            shutil.chown(datadir / name, "postgres", "postgres")


def test_postgres_base_backup_verify_and_restore_on_a_second_server(work):
    bindir = pg_tools()
    db = unique_db_name()
    source = None
    if shared_allows_replication(bindir):
        port = SHARED_PG_PORT
    else:
        # The shared pg_hba.conf has no replication entry; it is not ours to change.
        source = PgServer.initdb(bindir, work, "source").start()
        port = source.port
    restored = None
    try:
        psql(bindir, port, f"CREATE DATABASE {db}")
        psql(bindir, port, "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL); "
                           "INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 500) g",
             db=db)
        relpath = psql(bindir, port, "SELECT pg_relation_filepath('customers')", db=db)[0][0]

        pg_script("base", work / "base", "--fast", port=port)
        assert (work / "base" / "backup_manifest").exists()
        assert '"Checksum-Algorithm": "SHA256"' in (work / "base" / "backup_manifest").read_text()
        run([bindir / "pg_verifybackup", work / "base"])  # independently of the script
        pg_script("verify", work / "base", port=port)

        # A damaged copy fails verification, and restore refuses it.
        damaged = work / "damaged"
        shutil.copytree(work / "base", damaged, symlinks=True)
        with open(damaged / relpath, "r+b") as f:
            f.seek(8192 + 100)
            byte = f.read(1)
            f.seek(8192 + 100)
            f.write(bytes([byte[0] ^ 0xFF]))
        bad = pg_script("verify", damaged, port=port, check=False)
        assert bad.returncode != 0 and "failed verification" in bad.stderr, bad.stderr
        bad = pg_script("restore", damaged, work / "from-damaged", port=port, check=False)
        assert bad.returncode != 0 and not (work / "from-damaged").exists()

        psql(bindir, port, "INSERT INTO customers VALUES (501, 'after the backup')", db=db)

        pg_script("restore", work / "base", work / "restored", "--no-archiving", port=port)
        minimal_config(work / "restored")
        restored = PgServer(bindir, work / "restored", work / "restored-run").start()
        assert restored.sql("SELECT pg_is_in_recovery()") == [["f"]]
        assert restored.sql("SELECT count(*), max(id) FROM customers", db=db) == [["500", "500"]]
        assert restored.sql("SELECT name FROM customers WHERE id = 42", db=db) == [["customer 42"]]
    finally:
        if restored:
            restored.stop()
        if source:
            source.stop()
        else:
            psql(bindir, port, f"DROP DATABASE IF EXISTS {db}", check=False)
    if not source:
        assert psql(bindir, port, f"SELECT 1 FROM pg_database WHERE datname = '{db}'") == []


def test_postgres_point_in_time_recovery_from_the_wal_archive(work):
    bindir = pg_tools()
    waldir = owned_dir(work / "wal-archive", "postgres")
    config = pg_script("archive-config", waldir, port=0).stdout
    settings = dict(re.findall(r"^(\w+) = (.*)$", config, re.M))
    assert settings["archive_mode"] == "on" and settings["archive_timeout"] == "'1h'"
    assert "archive-wal" in settings["archive_command"]
    primary = PgServer.initdb(bindir, work, "primary", conf=config)  # the printed lines, as printed
    db = unique_db_name()
    servers = [primary]
    try:
        primary.start()
        primary.sql(f"CREATE DATABASE {db}")
        primary.sql("CREATE TABLE tokens (id int PRIMARY KEY, phase text NOT NULL)", db=db)
        primary.sql("INSERT INTO tokens VALUES (1, 'before the base backup')", db=db)

        pg_script("daily", work / "base", "--tar", "--fast", port=primary.port)
        [base] = [p for p in (work / "base").iterdir() if p.is_dir()]
        assert (base / "base.tar.gz").exists() and (base / "pg_wal.tar.gz").exists()

        primary.sql("INSERT INTO tokens VALUES (2, 'wanted'), (3, 'wanted')", db=db)
        [[target]] = primary.sql("SELECT clock_timestamp()")
        time.sleep(1.2)
        primary.sql("INSERT INTO tokens VALUES (4, 'after the target'); DELETE FROM tokens WHERE id = 1", db=db)
        [[segment]] = primary.sql("SELECT pg_walfile_name(pg_switch_wal())")

        def archived():
            [[last, failed]] = primary.sql("SELECT coalesce(last_archived_wal, ''), failed_count "
                                           "FROM pg_stat_archiver")
            assert failed == "0", primary.log_tail()
            return last >= segment

        wait_for(f"WAL segment {segment} in the archive", archived)
        assert (waldir / segment).exists()

        pg_script("restore", base, work / "pitr", "--wal-archive", waldir, "--until", target,
                  "--no-archiving", port=primary.port)
        assert (work / "pitr" / "recovery.signal").exists()
        pitr = PgServer(bindir, work / "pitr", work / "pitr-run")
        servers.append(pitr)
        pitr.start()
        wait_for("the recovered server to promote", lambda: pitr.sql("SELECT pg_is_in_recovery()") == [["f"]])
        assert pitr.sql("SELECT id, phase FROM tokens ORDER BY id", db=db) == [
            ["1", "before the base backup"], ["2", "wanted"], ["3", "wanted"]]
        assert "recovery stopping before commit" in pitr.log.read_text()
        pitr.sql("INSERT INTO tokens VALUES (10, 'written after recovery')", db=db)

        # Without --until: everything the archive has.
        pg_script("restore", base, work / "latest", "--wal-archive", waldir, "--no-archiving", port=primary.port)
        latest = PgServer(bindir, work / "latest", work / "latest-run")
        servers.append(latest)
        latest.start()
        wait_for("the recovered server to promote", lambda: latest.sql("SELECT pg_is_in_recovery()") == [["f"]])
        assert latest.sql("SELECT id, phase FROM tokens ORDER BY id", db=db) == [
            ["2", "wanted"], ["3", "wanted"], ["4", "after the target"]]
        assert latest.sql("SELECT setting FROM pg_settings WHERE name = 'archive_mode'") == [["off"]]

        # Pruning keeps the one base backup and the WAL from its start on.
        label = run(["tar", "-xzOf", base / "base.tar.gz", "backup_label"]).stdout
        [first] = re.findall(r"START WAL LOCATION: .*\(file ([0-9A-F]{24})\)", label)
        before = sorted(p.name for p in waldir.iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name))
        assert before[0] < first <= segment
        pg_script("prune", work / "base", "7", waldir, port=primary.port)
        assert base.exists()
        after = sorted(p.name for p in waldir.iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name))
        assert after == [name for name in before if name >= first]
    finally:
        for server in reversed(servers):
            server.stop()


def test_postgres_streaming_standby_and_promotion(work):
    bindir = pg_tools()
    primary = PgServer.initdb(bindir, work, "primary")
    db = unique_db_name()
    servers = [primary]
    try:
        primary.start()
        primary.sql(f"CREATE DATABASE {db}")
        primary.sql("CREATE TABLE events (id int PRIMARY KEY, note text)", db=db)
        primary.sql("INSERT INTO events VALUES (1, 'before the standby')", db=db)

        pg_script("standby", work / "standby", f"host=127.0.0.1 port={primary.port} user=postgres",
                  "--slot", "harsha_test_standby", port=primary.port)
        standby_dir = work / "standby"
        assert (standby_dir / "standby.signal").exists()
        assert "primary_conninfo" in (standby_dir / "postgresql.auto.conf").read_text()
        assert "primary_slot_name = 'harsha_test_standby'" in (standby_dir / "postgresql.auto.conf").read_text()
        assert primary.sql("SELECT slot_name FROM pg_replication_slots") == [["harsha_test_standby"]]

        standby = PgServer(bindir, standby_dir, work / "standby-run")
        servers.append(standby)
        standby.start()
        assert standby.sql("SELECT pg_is_in_recovery()") == [["t"]]

        primary.sql("INSERT INTO events VALUES (2, 'streamed')", db=db)
        wait_for("the row on the standby",
                 lambda: standby.sql("SELECT note FROM events WHERE id = 2", db=db) == [["streamed"]])
        wait_for("streaming replication",
                 lambda: primary.sql("SELECT state FROM pg_stat_replication") == [["streaming"]])
        refused = standby.sql("INSERT INTO events VALUES (3, 'on a standby')", db=db, check=False)
        assert refused is None  # read-only while it follows the primary

        # Failover: the primary goes away, the standby is promoted and takes writes.
        primary.stop()
        assert standby.sql("SELECT pg_promote(true, 60)") == [["t"]]
        assert standby.sql("SELECT pg_is_in_recovery()") == [["f"]]
        standby.sql("INSERT INTO events VALUES (3, 'after failover')", db=db)
        assert standby.sql("SELECT id FROM events ORDER BY id", db=db) == [["1"], ["2"], ["3"]]
    finally:
        for server in reversed(servers):
            server.stop()


def test_postgres_wal_archiving_and_pruning_without_a_server(work):
    pg_tools()
    waldir = work / "wal"
    waldir.mkdir()
    segment = work / "000000010000000000000007"
    segment.write_bytes(os.urandom(4096))
    pg_script("archive-wal", segment, segment.name, waldir, port=0)
    assert (waldir / segment.name).read_bytes() == segment.read_bytes()
    pg_script("archive-wal", segment, segment.name, waldir, port=0)  # again, identical: fine
    other = work / "other"
    other.write_bytes(os.urandom(4096))
    refused = pg_script("archive-wal", other, segment.name, waldir, port=0, check=False)
    assert refused.returncode != 0 and "different content" in refused.stderr
    assert (waldir / segment.name).read_bytes() == segment.read_bytes()
    assert not [p for p in waldir.iterdir() if p.name.startswith(".")]

    # Base backups and WAL kept for 7 days: the oldest backup goes once a newer one is
    # older than that, and with it the WAL before the oldest kept backup's start.
    root = work / "base"
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    starts = {"20000101T010000Z": 2, "20000102T010000Z": 4, now: 6}
    for name, start in starts.items():
        (root / name).mkdir(parents=True)
        (root / name / "backup_manifest").write_text("{}")
        (root / name / "backup_label").write_text(
            f"START WAL LOCATION: 0/{start:X}000028 (file 0000000100000000000000{start:02X})\n")
    for n in range(1, 8):
        (waldir / f"0000000100000000000000{n:02X}").touch(exist_ok=True)
    (waldir / "00000002.history").touch()
    pg_script("prune", root, "7", waldir, port=0)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["20000102T010000Z", now]
    assert sorted(p.name for p in waldir.iterdir()) == [
        "00000001000000000000000" + str(n) for n in range(4, 8)] + ["00000002.history"]

    cron = pg_script("cron", "/var/backups/harsha/postgres/gateway", "/var/lib/postgresql/wal-archive/gateway",
                     port=5432).stdout
    [job] = [line.split(None, 6) for line in cron.splitlines() if line and line[0].isdigit()]
    assert job[:6] == ["0", "1", "*", "*", "*", "postgres"]
    assert "daily /var/backups/harsha/postgres/gateway" in job[6]
    assert "prune /var/backups/harsha/postgres/gateway 7 /var/lib/postgresql/wal-archive/gateway" in job[6]
