#!/usr/bin/env bash
# Physical backups of the erp role's MariaDB server with mariabackup (docs/backup.md):
# a full backup every day and an incremental every hour.
#
#   scripts/backup_mariadb.sh full DIR                 full backup of the server into DIR (new)
#   scripts/backup_mariadb.sh incremental DIR BASE     changes since backup BASE (a full or an
#                                                      incremental) into DIR (new)
#   scripts/backup_mariadb.sh prepare DIR [INCREMENTAL...]
#                                                      make full backup DIR restorable, applying the
#                                                      incrementals oldest first; changes DIR in place
#                                                      (prepare a copy), leaves the incrementals as they were
#   scripts/backup_mariadb.sh restore PREPARED DATADIR copy a prepared backup into the empty data
#                                                      directory of a stopped server
#   scripts/backup_mariadb.sh daily ROOT               full backup starting a new chain ROOT/<UTC time>/full
#   scripts/backup_mariadb.sh hourly ROOT              next incremental of the newest chain in ROOT,
#                                                      ROOT/<chain>/inc-<UTC time> (a full if none yet)
#   scripts/backup_mariadb.sh prune ROOT DAYS          delete the chains not needed to restore any
#                                                      hour of the last DAYS days
#   scripts/backup_mariadb.sh cron ROOT [DAYS]         print /etc/cron.d lines: daily full at 02:00,
#                                                      an incremental every hour on the hour but 02:00,
#                                                      chains kept DAYS (7) days
#
# The server is reached with MARIADB_HOST (127.0.0.1), MARIADB_PORT (3306), or MARIADB_SOCKET
# when set, as MARIADB_USER (root); MARIADB_PASSWORD, when set (even empty), is passed through a
# private option file, otherwise the option files (~/.my.cnf, [mariabackup] or [client]) decide.
# mariabackup reads the data files directly, so it runs on the database host, as root or the
# mysql user. MARIADB_DATADIR overrides the data directory of the option files,
# MARIADB_BACKUP_OPTS adds options to every backup (e.g. --parallel=4), MARIADB_OS_USER (mysql)
# owns a restored data directory, MARIADB_LOCK_WAIT (3300) is how many seconds daily/hourly/prune
# wait for another run on the same ROOT. MARIABACKUP names the program (mariabackup).
set -euo pipefail

MARIABACKUP=${MARIABACKUP:-mariabackup}
MARIADB_USER=${MARIADB_USER:-root}
MARIADB_HOST=${MARIADB_HOST:-127.0.0.1}
MARIADB_PORT=${MARIADB_PORT:-3306}
MARIADB_SOCKET=${MARIADB_SOCKET:-}
MARIADB_DATADIR=${MARIADB_DATADIR:-}
MARIADB_BACKUP_OPTS=${MARIADB_BACKUP_OPTS:-}
MARIADB_OS_USER=${MARIADB_OS_USER:-mysql}
MARIADB_LOCK_WAIT=${MARIADB_LOCK_WAIT:-3300}
BACKUP_NAME=backup_mariadb
BACKUP_LOCK_WAIT=$MARIADB_LOCK_WAIT
# shellcheck source=scripts/backup_common.sh
source "$(dirname "$0")/backup_common.sh"
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

need_mariabackup() {
  command -v "$MARIABACKUP" >/dev/null 2>&1 ||
    die "$MARIABACKUP not found: install the Debian package mariadb-backup (apt-get install mariadb-backup)"
}

# The checkpoints file mariabackup writes into every backup (renamed in MariaDB 11).
checkpoints() {
  local f
  for f in "$1/xtrabackup_checkpoints" "$1/mariadb_backup_checkpoints"; do
    [[ -f $f ]] && { echo "$f"; return 0; }
  done
  return 1
}
# checkpoint DIR KEY: a value of DIR's checkpoints file (backup_type, from_lsn, to_lsn).
checkpoint() {
  local f
  f=$(checkpoints "$1") || die "$1 is not a mariabackup backup (no xtrabackup_checkpoints)"
  sed -n "s/^$2 = //p" "$f"
}

# A new backup directory: it must not exist yet (an empty directory is accepted).

# Runs mariabackup --backup into a scratch directory next to TARGET and renames it to TARGET
# once mariabackup reports success: TARGET exists only as a complete backup.
run_backup() {
  local target=$1; shift
  local partial="$target.partial-$$" log opts=() extra
  log=$(mktemp "${TMPDIR:-/tmp}/backup_mariadb.XXXXXX.log"); TEMPS+=("$log")
  if [[ -n ${MARIADB_PASSWORD+set} ]]; then
    extra=$(mktemp "${TMPDIR:-/tmp}/backup_mariadb.XXXXXX.cnf"); TEMPS+=("$extra")
    chmod 600 "$extra"
    local pw=${MARIADB_PASSWORD//\\/\\\\}; pw=${pw//\"/\\\"}
    printf '[mariabackup]\npassword="%s"\n' "$pw" >"$extra"
    opts+=("--defaults-extra-file=$extra")
  fi
  opts+=(--backup "--target-dir=$partial" "--user=$MARIADB_USER")
  if [[ -n $MARIADB_SOCKET ]]; then
    opts+=("--socket=$MARIADB_SOCKET")
  else
    opts+=("--host=$MARIADB_HOST" "--port=$MARIADB_PORT")
  fi
  [[ -n $MARIADB_DATADIR ]] && opts+=("--datadir=$MARIADB_DATADIR")
  # shellcheck disable=SC2206 # MARIADB_BACKUP_OPTS is a list of options
  [[ -n $MARIADB_BACKUP_OPTS ]] && opts+=($MARIADB_BACKUP_OPTS)
  TEMPS+=("$partial")
  if ! "$MARIABACKUP" "${opts[@]}" "$@" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "mariabackup --backup failed (above: the end of its log); nothing was written to $target"
  fi
  mv -- "$partial" "$target"
}

cmd_full() {
  (($# == 1)) || usage
  need_mariabackup
  local dir; dir=$(abspath "$1")
  new_target "$dir"
  note "full backup of the server at ${MARIADB_SOCKET:-$MARIADB_HOST:$MARIADB_PORT} into $dir"
  run_backup "$dir"
  note "done: $dir ($(du -sh "$dir" | cut -f1), to_lsn $(checkpoint "$dir" to_lsn))"
}

cmd_incremental() {
  (($# == 2)) || usage
  need_mariabackup
  local dir base type
  dir=$(abspath "$1"); base=$(abspath "$2")
  [[ -d $base ]] || die "base backup $base does not exist"
  type=$(checkpoint "$base" backup_type)
  case $type in
    full-backuped|incremental) ;;
    *) die "$base is a '$type' backup; an incremental is taken against an unprepared full or incremental backup (prepare works on a copy of the chain)" ;;
  esac
  new_target "$dir"
  note "incremental backup against $base (from LSN $(checkpoint "$base" to_lsn)) into $dir"
  run_backup "$dir" "--incremental-basedir=$base"
  note "done: $dir ($(du -sh "$dir" | cut -f1), LSN $(checkpoint "$dir" from_lsn)..$(checkpoint "$dir" to_lsn))"
}

cmd_prepare() {
  (($# >= 1)) || usage
  need_mariabackup
  local dir type lsn last inc log scratch copy m
  dir=$(abspath "$1"); shift
  [[ -d $dir ]] || die "$dir does not exist"
  type=$(checkpoint "$dir" backup_type)
  case $type in
    full-backuped) ;;
    log-applied|full-prepared)
      (($# == 0)) && { note "$dir is already prepared"; return 0; }
      die "$dir is already prepared: incrementals go on an unprepared full backup, all in one prepare (start again from a copy of the full backup)" ;;
    *) die "$dir is a '$type' backup: prepare starts from a full backup" ;;
  esac
  # Check the whole chain before changing anything: each incremental starts where the one
  # before it ended and ends later than it.
  lsn=$(checkpoint "$dir" to_lsn); last=$(checkpoint "$dir" last_lsn)
  for inc in "$@"; do
    [[ -d $inc ]] || die "incremental $inc does not exist"
    [[ $(checkpoint "$inc" backup_type) == incremental ]] || die "$inc is not an incremental backup"
    [[ $(checkpoint "$inc" from_lsn) == "$lsn" && $(checkpoint "$inc" last_lsn) -gt $last ]] ||
      die "$inc does not follow the backup before it (LSN $lsn..$last): give the incrementals of this full backup's chain, oldest first, without gaps"
    # mariabackup --prepare moves an incremental's .delta and .new files away, so one
    # that was applied before has lost them.
    while IFS= read -r -d '' m; do
      [[ -f ${m%.meta}.delta ]] ||
        die "$inc was consumed by an earlier prepare (${m#"$inc"/} has no .delta): use an untouched copy"
    done < <(find "$inc" -name '*.meta' -print0)
    lsn=$(checkpoint "$inc" to_lsn); last=$(checkpoint "$inc" last_lsn)
  done
  log=$(mktemp "${TMPDIR:-/tmp}/backup_mariadb.XXXXXX.log"); TEMPS+=("$log")
  note "preparing $dir"
  "$MARIABACKUP" --prepare "--target-dir=$dir" >"$log" 2>&1 ||
    { tail -n 30 "$log" >&2; die "mariabackup --prepare of $dir failed"; }
  # Applying an incremental uses it up, so each is applied from a scratch copy next to DIR
  # and the backups themselves stay as they were.
  scratch=$(mktemp -d "$(dirname "$dir")/.prepare-$(basename "$dir").XXXXXX"); TEMPS+=("$scratch")
  for inc in "$@"; do
    inc=$(abspath "$inc")
    note "applying $inc"
    copy=$scratch/$(basename "$inc")
    rm -rf -- "$copy"; cp -a -- "$inc" "$copy"
    "$MARIABACKUP" --prepare "--target-dir=$dir" "--incremental-dir=$copy" >"$log" 2>&1 ||
      { tail -n 30 "$log" >&2; die "applying $inc to $dir failed: $dir is unusable now, start again from a copy of the full backup"; }
    rm -rf -- "$copy"
  done
  note "done: $dir is prepared (changes up to LSN $last); restore it with: $SELF restore $dir DATADIR"
}

cmd_restore() {
  (($# == 2)) || usage
  need_mariabackup
  local src datadir type log
  src=$(abspath "$1"); datadir=$(abspath "$2")
  [[ -d $src ]] || die "$src does not exist"
  type=$(checkpoint "$src" backup_type)
  # MariaDB 10.x marks a prepared backup log-applied, older and newer ones full-prepared.
  [[ $type == log-applied || $type == full-prepared ]] ||
    die "$src is a '$type' backup, not a prepared one: run '$SELF prepare $src [INCREMENTAL...]' first"
  if [[ -e $datadir ]]; then
    [[ -d $datadir ]] || die "$datadir is not a directory"
    [[ -z $(ls -A "$datadir") ]] ||
      die "$datadir is not empty: stop the server and move its data directory aside (restore only fills an empty one)"
  else
    mkdir -p "$datadir"
  fi
  log=$(mktemp "${TMPDIR:-/tmp}/backup_mariadb.XXXXXX.log"); TEMPS+=("$log")
  note "copying $src into $datadir"
  "$MARIABACKUP" --copy-back "--target-dir=$src" "--datadir=$datadir" >"$log" 2>&1 ||
    { tail -n 30 "$log" >&2; die "mariabackup --copy-back failed"; }
  if ((EUID == 0)) && id "$MARIADB_OS_USER" >/dev/null 2>&1; then
    chown -R "$MARIADB_OS_USER:" "$datadir"
  fi
  note "done: start the server on $datadir (it must belong to the server's user, $MARIADB_OS_USER)"
}

# ---- scheduled backups: ROOT/<chain>/full and ROOT/<chain>/inc-<time>, times in UTC ----

# The chains of ROOT that have a full backup, oldest first.
chains() {
  local d
  for d in "$1"/*/; do
    d=${d%/}
    [[ $(basename "$d") =~ $STAMP_RE && -d $d/full ]] && echo "$d"
  done
  return 0
}

cmd_daily() {
  (($# == 1)) || usage
  local root; root=$(abspath "$1")
  lock_root "$root"
  cmd_full "$root/$(stamp)/full"
}

cmd_hourly() {
  (($# == 1)) || usage
  local root chain base inc
  root=$(abspath "$1")
  lock_root "$root"
  chain=$(chains "$root" | tail -n 1)
  if [[ -z $chain ]]; then
    note "no full backup in $root yet: taking one instead of an incremental"
    cmd_full "$root/$(stamp)/full"
    return
  fi
  base=$chain/full
  for inc in "$chain"/inc-*/; do
    inc=${inc%/}
    [[ $(basename "$inc") =~ ^inc-[0-9]{8}T[0-9]{6}Z$ ]] && base=$inc
  done
  cmd_incremental "$chain/inc-$(stamp)" "$base"
}

cmd_prune() {
  (($# == 2)) || usage
  [[ $2 =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive whole number, not '$2'"
  local root cutoff list i next name
  root=$(abspath "$1")
  [[ -d $root ]] || die "$root does not exist"
  lock_root "$root"
  cutoff=$(($(date -u +%s) - $2 * 86400))
  # Leftovers of runs that died (nothing runs while we hold the lock).
  for name in "$root"/*/*.partial-* "$root"/*; do
    [[ -e $name ]] || continue
    if [[ $name == *.partial-* ]] ||
       [[ -d $name && $(basename "$name") =~ $STAMP_RE && ! -d $name/full ]]; then
      note "removing the leftover of a failed run: $name"; rm -rf -- "$name"
    fi
  done
  # A chain restores the hours from its full backup until the next chain's full backup:
  # it can go once the next chain started before the cutoff.
  mapfile -t list < <(chains "$root")
  for ((i = 0; i + 1 < ${#list[@]}; i++)); do
    next=$(basename "${list[i + 1]}")
    if (($(stamp_epoch "$next") <= cutoff)); then
      note "removing ${list[i]} (older than $2 days)"; rm -rf -- "${list[i]}"
    fi
  done
}

cmd_cron() {
  (($# == 1 || $# == 2)) || usage
  local root days=${2:-7} log=/var/log/harsha-backup-mariadb.log
  [[ $days =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive whole number, not '$days'"
  [[ $1 == /* ]] || die "ROOT must be an absolute path for cron, not '$1'"
  root=$1
  local conn="MARIADB_HOST=$MARIADB_HOST
MARIADB_PORT=$MARIADB_PORT"
  [[ -n $MARIADB_SOCKET ]] && conn="MARIADB_SOCKET=$MARIADB_SOCKET"
  cat <<EOF
# Harsha Mesh, erp MariaDB (docs/backup.md): a full backup daily at 02:00, an incremental
# every hour on the hour but 02:00, chains kept for $days days. For
# /etc/cron.d/harsha-backup-mariadb (times are the host's local time); the password goes in
# root's ~/.my.cnf, group [mariabackup], password=..., mode 600.
SHELL=/bin/bash
MARIADB_USER=$MARIADB_USER
$conn
0 2 * * * root $SELF daily $root >>$log 2>&1 && $SELF prune $root $days >>$log 2>&1
0 0-1,3-23 * * * root $SELF hourly $root >>$log 2>&1
EOF
}

(($# >= 1)) || usage
command=$1; shift
case $command in
  full) cmd_full "$@" ;;
  incremental) cmd_incremental "$@" ;;
  prepare) cmd_prepare "$@" ;;
  restore) cmd_restore "$@" ;;
  daily) cmd_daily "$@" ;;
  hourly) cmd_hourly "$@" ;;
  prune) cmd_prune "$@" ;;
  cron) cmd_cron "$@" ;;
  -h|--help|help) usage ;;
  *) echo "backup_mariadb: unknown command '$command'" >&2; usage ;;
esac
