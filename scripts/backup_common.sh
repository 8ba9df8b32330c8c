# Helpers shared by scripts/backup_mariadb.sh and scripts/backup_postgres.sh;
# sourced, not run. The sourcing script sets BACKUP_NAME (its messages'
# prefix) and BACKUP_LOCK_WAIT (seconds to wait for a root's lock) first.

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "$BACKUP_NAME: $*" >&2; exit 1; }
note() { echo "$BACKUP_NAME: $*" >&2; }

# Scratch directories removed when the script exits, whatever happens.
TEMPS=()
cleanup() { local t; for t in "${TEMPS[@]+"${TEMPS[@]}"}"; do rm -rf -- "$t"; done; }
trap cleanup EXIT

abspath() { realpath -m -- "$1"; }

# A backup goes into a directory that does not exist yet (or is empty).
new_target() {
  local dir=$1
  if [[ -e $dir ]]; then
    [[ -d $dir && -z $(ls -A "$dir") ]] || die "$dir already exists; a backup goes into a new directory"
    rmdir "$dir"
  fi
  mkdir -p "$(dirname "$dir")"
}

# Scheduled backups are named by their UTC start time.
STAMP_RE='^[0-9]{8}T[0-9]{6}Z$'
stamp() { date -u +%Y%m%dT%H%M%SZ; }
stamp_epoch() { local s=$1; date -u -d "${s:0:4}-${s:4:2}-${s:6:2} ${s:9:2}:${s:11:2}:${s:13:2}" +%s; }

# One scheduled run at a time per backup root.
lock_root() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock -w "$BACKUP_LOCK_WAIT" 9 || die "another backup run holds $1/.lock (waited ${BACKUP_LOCK_WAIT}s)"
}
