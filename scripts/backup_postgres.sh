#!/usr/bin/env bash
# Base backups, WAL archiving, point-in-time recovery and streaming standbys for the
# gateway and sync roles' PostgreSQL servers (docs/backup.md).
#
#   scripts/backup_postgres.sh base DIR [--tar] [--fast]
#       pg_basebackup of the server into DIR (new) with the WAL it needs (-X stream) and a
#       SHA-256 manifest, checked with pg_verifybackup. --tar: gzipped tar files instead of a
#       data directory; --fast: an immediate checkpoint instead of a spread one
#   scripts/backup_postgres.sh verify DIR
#       pg_verifybackup a base backup again (either format)
#   scripts/backup_postgres.sh restore BASE DATADIR [--wal-archive WALDIR [--until TIMESTAMP]]
#                                      [--action promote|pause|shutdown] [--no-archiving]
#       lay out an empty DATADIR from base backup BASE (checked first). With --wal-archive the
#       server recovers from the archive (restore_command), up to TIMESTAMP with --until
#       (e.g. '2025-03-01 13:45:00+05:30') or else to the end of the archive, then takes
#       --action (promote). --no-archiving: the restored server does not archive (drills)
#   scripts/backup_postgres.sh archive-config WALDIR [--timeout DURATION]
#       print the postgresql.conf lines that archive every WAL segment into WALDIR, a segment
#       at least every DURATION (1h: the gateway's RPO is 4 h)
#   scripts/backup_postgres.sh archive-wal PATH NAME WALDIR
#       the archive_command archive-config prints: copy one segment into WALDIR, atomically
#   scripts/backup_postgres.sh standby DIR PRIMARY [--slot NAME]
#       a streaming-replication standby of PRIMARY ('host=… port=…' or HOST[:PORT]) in DIR
#       (pg_basebackup -R), with physical replication slot NAME created on the primary
#   scripts/backup_postgres.sh daily ROOT [--tar]
#       a base backup into ROOT/<UTC time>
#   scripts/backup_postgres.sh prune ROOT DAYS [WALDIR]
#       delete the base backups (and the archived WAL) not needed to recover to any moment of
#       the last DAYS days
#   scripts/backup_postgres.sh cron ROOT WALDIR [DAYS]
#       print /etc/cron.d lines: a base backup daily at 01:00, pruning to DAYS (7) days
#
# The server is reached with libpq's PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres) and
# PGPASSWORD or ~/.pgpass; base and standby need a replication connection (pg_hba.conf:
# "host replication postgres 127.0.0.1/32 ..."). PG_BINDIR holds the PostgreSQL programs
# (default: the newest /usr/lib/postgresql/*/bin), PG_OS_USER (postgres) owns restored and
# standby data directories when run as root, PG_LOCK_WAIT (3300) is how many seconds daily
# and prune wait for another run on the same ROOT.
set -euo pipefail

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
PG_OS_USER=${PG_OS_USER:-postgres}
PG_LOCK_WAIT=${PG_LOCK_WAIT:-3300}
BACKUP_NAME=backup_postgres
BACKUP_LOCK_WAIT=$PG_LOCK_WAIT
# shellcheck source=scripts/backup_common.sh
source "$(dirname "$0")/backup_common.sh"
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [[ -z ${PG_BINDIR:-} ]]; then
  PG_BINDIR=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
fi
# bin PROGRAM: the path of a PostgreSQL program, or a message naming the package.
bin() {
  local p=${PG_BINDIR:+$PG_BINDIR/}$1
  if [[ -x $p ]]; then echo "$p"; return; fi
  p=$(command -v "$1" 2>/dev/null) && { echo "$p"; return; }
  die "$1 not found (PG_BINDIR=${PG_BINDIR:-unset}): install the Debian package postgresql-client-15"
}

empty_datadir() {
  local dir=$1
  if [[ -e $dir ]]; then
    [[ -d $dir ]] || die "$dir is not a directory"
    [[ -z $(ls -A "$dir") ]] ||
      die "$dir is not empty: stop the server and move its data directory aside (only an empty directory is filled)"
  else
    mkdir -p "$dir"
  fi
  chmod 700 "$dir"
}

own() {
  chmod 700 "$1"
  if ((EUID == 0)) && id "$PG_OS_USER" >/dev/null 2>&1; then chown -R "$PG_OS_USER:" "$1"; fi
}

# A value for a single-quoted postgresql.conf string: no quotes, no %.
conf_safe() { [[ $1 != *[\'\"%\\]* ]] || die "$2 must not contain quotes, backslashes or %: $1"; }

is_tar() { [[ -f $1/base.tar.gz || -f $1/base.tar ]]; }
base_tar() { if [[ -f $1/base.tar.gz ]]; then echo "$1/base.tar.gz"; else echo "$1/base.tar"; fi; }
wal_tar() { if [[ -f $1/pg_wal.tar.gz ]]; then echo "$1/pg_wal.tar.gz"; else echo "$1/pg_wal.tar"; fi; }

# extract_tar BASE DEST: a tar-format base backup as a data directory in DEST.
extract_tar() {
  local base=$1 dest=$2 extra
  extra=$(find "$base" -maxdepth 1 -name '[0-9]*.tar*' | head -n 1)
  [[ -z $extra ]] || die "$base has a tablespace ($(basename "$extra")): this script restores backups without tablespaces only"
  tar -xf "$(base_tar "$base")" -C "$dest"
  mkdir -p "$dest/pg_wal"
  [[ ! -f $(wal_tar "$base") ]] || tar -xf "$(wal_tar "$base")" -C "$dest/pg_wal"
}

verify() {
  local dir=$1 scratch
  [[ -f $dir/backup_manifest ]] || die "$dir has no backup_manifest: not a base backup of this script"
  if is_tar "$dir"; then
    # pg_verifybackup reads data directories only: check an extracted copy.
    scratch=$(mktemp -d "$(dirname "$dir")/.verify-$(basename "$dir").XXXXXX"); TEMPS+=("$scratch")
    extract_tar "$dir" "$scratch"
    "$(bin pg_verifybackup)" --quiet -m "$dir/backup_manifest" "$scratch" ||
      die "$dir failed verification"
    rm -rf -- "$scratch"
  else
    "$(bin pg_verifybackup)" --quiet "$dir" || die "$dir failed verification"
  fi
}

# The WAL segment a base backup starts in (from its backup_label).
start_wal() {
  local label
  if is_tar "$1"; then label=$(tar -xOf "$(base_tar "$1")" backup_label); else label=$(cat "$1/backup_label"); fi
  sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p' <<<"$label"
}

cmd_base() {
  (($# >= 1)) || usage
  local dir=$1 tar=0 fast=0 partial args
  shift
  while (($#)); do
    case $1 in --tar) tar=1 ;; --fast) fast=1 ;; *) usage ;; esac; shift
  done
  dir=$(abspath "$dir")
  new_target "$dir"
  partial="$dir.partial-$$"; TEMPS+=("$partial")
  args=(-D "$partial" -X stream --manifest-checksums=SHA256 --no-password
        --label "harsha base backup $(date -u +%FT%TZ)")
  if ((tar)); then args+=(-F t -z); else args+=(-F p); fi
  ((fast)) && args+=(--checkpoint=fast)
  note "base backup of $PGHOST:$PGPORT into $dir"
  "$(bin pg_basebackup)" "${args[@]}" || die "pg_basebackup failed; nothing was written to $dir"
  verify "$partial"
  mv -- "$partial" "$dir"
  note "done: $dir ($(du -sh "$dir" | cut -f1), verified, starts in WAL segment $(start_wal "$dir"))"
}

cmd_verify() {
  (($# == 1)) || usage
  local dir; dir=$(abspath "$1")
  [[ -d $dir ]] || die "$dir does not exist"
  verify "$dir"
  note "$dir is intact"
}

cmd_restore() {
  (($# >= 2)) || usage
  local base datadir waldir="" until="" action=promote archiving=1
  base=$(abspath "$1"); datadir=$(abspath "$2"); shift 2
  while (($#)); do
    case $1 in
      --wal-archive) (($# >= 2)) || usage; waldir=$2; shift ;;
      --until) (($# >= 2)) || usage; until=$2; shift ;;
      --action) (($# >= 2)) || usage; action=$2; shift ;;
      --no-archiving) archiving=0 ;;
      *) usage ;;
    esac
    shift
  done
  [[ $action =~ ^(promote|pause|shutdown)$ ]] || die "--action is promote, pause or shutdown, not '$action'"
  [[ -z $until || -n $waldir ]] || die "--until needs --wal-archive WALDIR: the WAL after the base backup comes from the archive"
  if [[ -n $waldir ]]; then
    waldir=$(abspath "$waldir")
    [[ -d $waldir ]] || die "WAL archive $waldir does not exist"
    conf_safe "$waldir" WALDIR
  fi
  [[ -n $until ]] && conf_safe "$until" TIMESTAMP
  [[ -d $base ]] || die "$base does not exist"
  note "checking $base"
  verify "$base"
  empty_datadir "$datadir"
  if is_tar "$base"; then
    extract_tar "$base" "$datadir"
  else
    cp -a -- "$base/." "$datadir/"
  fi
  rm -f -- "$datadir/backup_manifest"
  {
    if [[ -n $waldir || $archiving == 0 ]]; then
      echo "# backup_postgres.sh restore, $(date -u +%FT%TZ): from $base"
    fi
    if [[ -n $waldir ]]; then
      echo "restore_command = 'cp \"$waldir/%f\" \"%p\"'"
      [[ -n $until ]] && echo "recovery_target_time = '$until'"
      echo "recovery_target_action = '$action'"
    fi
    ((archiving)) || echo "archive_mode = off"
  } >>"$datadir/postgresql.auto.conf"
  [[ -z $waldir ]] || : >"$datadir/recovery.signal"
  own "$datadir"
  if [[ -n $waldir ]]; then
    note "done: $datadir recovers from $waldir ${until:+up to $until }when started, then ${action}s; the log says \"recovery stopping before …\" and \"archive recovery complete\""
  else
    note "done: $datadir holds the database as of the end of the base backup"
  fi
  [[ -f $datadir/postgresql.conf ]] ||
    note "the backup has no postgresql.conf (Debian keeps it in /etc/postgresql): restore into the cluster's data directory, or give the server a configuration"
}

cmd_archive_config() {
  (($# >= 1)) || usage
  local waldir=$1 timeout=1h
  shift
  while (($#)); do
    case $1 in --timeout) (($# >= 2)) || usage; timeout=$2; shift ;; *) usage ;; esac; shift
  done
  [[ $waldir == /* ]] || die "WALDIR must be an absolute path (archive_command runs in the data directory)"
  conf_safe "$waldir" WALDIR
  [[ $timeout =~ ^[1-9][0-9]*(s|min|h)$ ]] || die "--timeout is a number with s, min or h, not '$timeout'"
  cat <<EOF
# Continuous WAL archiving (docs/backup.md) into
#   $waldir
# for point-in-time recovery with: $(basename "$SELF") restore BASE DATADIR --wal-archive WALDIR
# [--until TIME]. archive_mode needs a restart; WALDIR must exist, be writable by the
# server's user, and be on other storage than the data directory. wal_level must stay
# replica (the default) or logical.
archive_mode = on
archive_command = '$SELF archive-wal "%p" "%f" "$waldir"'
# Streaming replication ships WAL to the standby as it is written. When the standby is down
# or behind and the primary is lost, what can be recovered is the last base backup plus the
# archive, and a segment is archived only once it is full - on a quiet server that can take
# days. archive_timeout switches to a new segment after $timeout with any writes, so at most
# $timeout of committed work is ever unarchived; the rest of the gateway's 4-hour RPO is the
# margin for noticing and fixing a failing archive_command (alert on pg_stat_archiver:
# failed_count rising, or last_archived_time older than $timeout).
archive_timeout = '$timeout'
EOF
}

cmd_archive_wal() {
  (($# == 3)) || usage
  local src=$1 name=$2 waldir=$3 dest tmp
  [[ -d $waldir ]] || die "WAL archive $waldir does not exist"
  [[ $name =~ ^[0-9A-Za-z._-]+$ ]] || die "unexpected WAL file name '$name'"
  dest=$waldir/$name
  if [[ -e $dest ]]; then
    # Archived before (e.g. the server crashed before it recorded it): fine if identical.
    cmp -s -- "$src" "$dest" && exit 0
    die "$dest is already archived with different content: refusing to overwrite it"
  fi
  tmp=$waldir/.$name.tmp.$$
  cp -- "$src" "$tmp" || { rm -f -- "$tmp"; die "cannot copy $src into $waldir"; }
  sync -- "$tmp"
  mv -- "$tmp" "$dest"
  sync -- "$waldir"
}

cmd_standby() {
  (($# >= 2)) || usage
  local dir=$1 primary=$2 slot="" partial conninfo args
  shift 2
  while (($#)); do
    case $1 in --slot) (($# >= 2)) || usage; slot=$2; shift ;; *) usage ;; esac; shift
  done
  if [[ $primary == *=* ]]; then
    conninfo=$primary
  elif [[ $primary =~ ^([^:]+):([0-9]+)$ ]]; then
    conninfo="host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}"
  else
    conninfo="host=$primary"
  fi
  dir=$(abspath "$dir")
  new_target "$dir"
  partial="$dir.partial-$$"; TEMPS+=("$partial")
  args=(-D "$partial" -d "$conninfo" -F p -X stream -R --checkpoint=fast
        --manifest-checksums=SHA256 --no-password --label "harsha standby $(date -u +%FT%TZ)")
  [[ -n $slot ]] && args+=(-C -S "$slot")
  note "standby of '$conninfo' into $dir${slot:+ (replication slot $slot)}"
  "$(bin pg_basebackup)" "${args[@]}" || die "pg_basebackup failed; nothing was written to $dir"
  verify "$partial"
  rm -f -- "$partial/backup_manifest"
  mv -- "$partial" "$dir"
  own "$dir"
  note "done: start a server on $dir (standby.signal and primary_conninfo are in place); promote it with 'pg_ctl promote -D $dir' or SELECT pg_promote()"
}

# ---- scheduled base backups: ROOT/<UTC time> ----

backups() {
  local d
  for d in "$1"/*/; do
    d=${d%/}
    [[ $(basename "$d") =~ $STAMP_RE && -f $d/backup_manifest ]] && echo "$d"
  done
  return 0
}

cmd_daily() {
  (($# >= 1)) || usage
  local root; root=$(abspath "$1"); shift
  lock_root "$root"
  cmd_base "$root/$(date -u +%Y%m%dT%H%M%SZ)" "$@"
}

cmd_prune() {
  (($# == 2 || $# == 3)) || usage
  [[ $2 =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive whole number, not '$2'"
  local root waldir="" cutoff list i oldest name
  root=$(abspath "$1")
  [[ -d $root ]] || die "$root does not exist"
  if (($# == 3)); then waldir=$(abspath "$3"); [[ -d $waldir ]] || die "WAL archive $waldir does not exist"; fi
  lock_root "$root"
  cutoff=$(($(date -u +%s) - $2 * 86400))
  for name in "$root"/*.partial-* "$root"/.verify-*; do
    [[ -e $name ]] || continue
    note "removing the leftover of a failed run: $name"; rm -rf -- "$name"
  done
  # A base backup recovers the moments from its end until the next base backup: it can go
  # once the next one was taken before the cutoff.
  mapfile -t list < <(backups "$root")
  for ((i = 0; i + 1 < ${#list[@]}; i++)); do
    if (($(stamp_epoch "$(basename "${list[i + 1]}")") <= cutoff)); then
      note "removing ${list[i]} (older than $2 days)"; rm -rf -- "${list[i]}"
    fi
  done
  if [[ -n $waldir ]]; then
    mapfile -t list < <(backups "$root")
    ((${#list[@]})) || { note "no base backup in $root: keeping all of $waldir"; return 0; }
    oldest=$(start_wal "${list[0]}")
    [[ -n $oldest ]] || die "cannot read the start WAL segment of ${list[0]}"
    note "removing archived WAL before $oldest (the start of ${list[0]}) from $waldir"
    "$(bin pg_archivecleanup)" "$waldir" "$oldest"
  fi
}

cmd_cron() {
  (($# == 2 || $# == 3)) || usage
  local root=$1 waldir=$2 days=${3:-7} log=/var/log/postgresql/harsha-backup.log
  [[ $root == /* && $waldir == /* ]] || die "ROOT and WALDIR must be absolute paths for cron"
  [[ $days =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive whole number, not '$days'"
  cat <<EOF
# Harsha Mesh PostgreSQL (docs/backup.md): a base backup daily at 01:00, base backups and
# archived WAL kept for $days days. The server archives WAL continuously (archive-config).
#   base backups: $root
#   WAL archive:  $waldir
# For /etc/cron.d/harsha-backup-<role>, run as $PG_OS_USER; a password goes in ~$PG_OS_USER/.pgpass.
SHELL=/bin/bash
PGHOST=$PGHOST
PGPORT=$PGPORT
PGUSER=$PGUSER
0 1 * * * $PG_OS_USER $SELF daily $root >>$log 2>&1 && $SELF prune $root $days $waldir >>$log 2>&1
EOF
}

(($# >= 1)) || usage
command=$1; shift
case $command in
  base) cmd_base "$@" ;;
  verify) cmd_verify "$@" ;;
  restore) cmd_restore "$@" ;;
  archive-config) cmd_archive_config "$@" ;;
  archive-wal) cmd_archive_wal "$@" ;;
  standby) cmd_standby "$@" ;;
  daily) cmd_daily "$@" ;;
  prune) cmd_prune "$@" ;;
  cron) cmd_cron "$@" ;;
  -h|--help|help) usage ;;
  *) echo "backup_postgres: unknown command '$command'" >&2; usage ;;
esac
