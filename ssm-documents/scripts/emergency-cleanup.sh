#!/usr/bin/env bash
# emergency-cleanup.sh: the host part of runbook §1 Emergency Cleanup (steps 2-5), run by the
# <Prefix>-Host-EmergencyCleanup Command document, then "Start server" and its health check.
# WAL segments are NOT touched here: they are removed only by <Prefix>-ArchiveWal, after each one
# is verified in S3 (the runbook's step 1, "ONLY if you have a recent backup").
#
# Reads (the document's allowedPattern checks them first; this script checks them again, so it is
# safe to run by hand):
#   SSM_MountPoint            data mount, reported with df before and after (default /data)
#   SSM_BackupDir             directory of the backups (default /backups)
#   SSM_BackupRetentionDays   delete stemedb-backup-* older than this many days (1-9999, default 30)
#   SSM_KeepNewestBackups     always keep this many newest backups, whatever their age (1-999, default 1)
#   SSM_JournalVacuumDays     journalctl --vacuum-time=<days>d (1-9999, default 7)
#   SSM_CoreDumpDir           core dump directory (default /var/lib/systemd/coredump)
#   SSM_CoreDumpAgeDays       delete core.* files older than this many days (1-9999, default 1)
#   SSM_ServiceName           systemd unit of the database (default stemedb-api)
#   SSM_StartService          true|false: start the unit when it is not active (default true)
#   SSM_HealthUrl             health endpoint on this host (default http://localhost:18180/v1/health)
#   SSM_HealthTimeoutSeconds  how long to wait for health after the start (1-600, default 60)
#   SSM_DryRun                true|false: true lists what would be deleted and deletes nothing
#
# What is deleted, and only that:
#   backups     entries directly in BackupDir named stemedb-backup-*, regular files or directories
#               on BackupDir's filesystem, last modified more than BackupRetentionDays days ago,
#               except the KeepNewestBackups newest of them (by mtime; the newest backup is never
#               deleted, even when all are older than the retention), and except any backup that
#               a process holds open (an open file, or an open file or cwd inside a directory).
#               A directory is removed with rm -rf --one-file-system (never into another mount).
#   journal     journalctl --vacuum-time=<JournalVacuumDays>d (journald deletes its own archives).
#   core dumps  regular files directly in CoreDumpDir named core.*, on its filesystem, last
#               modified more than CoreDumpAgeDays days ago, not open by any process.
# Never a symlink (find -P; the entry itself is removed, never its target), never an entry on
# another filesystem (device compared per entry, -xdev), never anything else. A BackupDir or
# CoreDumpDir that is a symlink, or whose path resolves elsewhere (a symlink above it), is refused:
# that step deletes nothing and the script exits 1. A directory that does not exist is skipped.
# Nothing modified in the last 60 minutes is deleted, whatever the day parameters.
#
# Prints progress and the lists on stderr and, as the last stdout line, one JSON object:
#   {"status":"cleaned"|"dry-run"|"partial"|"refused","dryRun","mountPoint",
#    "before":{df},"after":{df},"availBytesFreed","bytesFreed",
#    "steps":{"backups":{...},"journal":{...},"coreDumps":{...}},"service":{...},"wal","problems":[...]}
# where df is {sizeBytes,usedBytes,availBytes,usedPercent,inodesTotal,inodesFree}, each directory
# step is {dir,status,deleted,bytesFreed,failed,deletedNames[],kept[{name,why}],availBytesBefore,
# availBytesAfter} (lists cut at 20; in a dry run "deleted" and "bytesFreed" are what would be).
# Exit: 0 done; 1 a step refused or failed, or the service is not healthy after the start
# (stderr: one line saying which); 2 invalid input. No temp files are written.
set -euo pipefail

readonly DAYS_RE='^[1-9][0-9]{0,3}$'
readonly KEEP_RE='^[1-9][0-9]{0,2}$'
readonly MIN_AGE_MINUTES=60
readonly MAX_LISTED=20

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='emergency-cleanup'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh
# shellcheck source=lib/cleanup-input.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/cleanup-input.sh" # stemedb:inline lib/cleanup-input.sh
# shellcheck source=lib/service-health.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/service-health.sh" # stemedb:inline lib/service-health.sh

read_parameters() {
  param MOUNT_POINT MountPoint "$PLAIN_PATH_RE" /data
  param BACKUP_DIR BackupDir "$PLAIN_PATH_RE" /backups
  param BACKUP_DAYS BackupRetentionDays "$DAYS_RE" 30
  param KEEP_NEWEST KeepNewestBackups "$KEEP_RE" 1
  param JOURNAL_DAYS JournalVacuumDays "$DAYS_RE" 7
  param CORE_DIR CoreDumpDir "$PLAIN_PATH_RE" /var/lib/systemd/coredump
  param CORE_DAYS CoreDumpAgeDays "$DAYS_RE" 1
  param SERVICE ServiceName "$SERVICE_RE" stemedb-api
  param START_SERVICE StartService '^(true|false)$' true
  param HEALTH_URL HealthUrl "$HEALTH_URL_RE" http://localhost:18180/v1/health
  param HEALTH_TIMEOUT HealthTimeoutSeconds "$HEALTH_TIMEOUT_RE" 60
  param DRY_RUN DryRun '^(true|false)$' false
  [[ -d $MOUNT_POINT ]] || refuse "MountPoint $MOUNT_POINT is not a directory"
}

# df of a path as JSON: sizeBytes, usedBytes, availBytes, usedPercent (used / (used + avail)), inodes.
df_json() {
  local size used avail itotal ifree pct
  read -r size used avail itotal ifree < <(df -B1 --output=size,used,avail,itotal,iavail -- "$1" | tail -n 1)
  pct=$(awk -v u="$used" -v a="$avail" 'BEGIN { if (u + a > 0) printf "%.2f", u * 100 / (u + a); else printf "0" }')
  printf '{"sizeBytes":%s,"usedBytes":%s,"availBytes":%s,"usedPercent":%s,"inodesTotal":%s,"inodesFree":%s}' \
    "$size" "$used" "$avail" "$pct" "${itotal/-/0}" "${ifree/-/0}"
}

# Checks a configured directory: prints "ok", "missing", or a reason it is refused.
dir_state() {
  local dir=$1 real
  if [[ -L $dir ]]; then
    printf 'refused: %s is a symlink' "$dir"
  elif [[ ! -e $dir ]]; then
    printf 'missing'
  elif [[ ! -d $dir ]]; then
    printf 'refused: %s is not a directory' "$dir"
  elif ! real=$(realpath -e -- "$dir" 2>/dev/null); then
    printf 'refused: cannot resolve %s' "$dir"
  elif [[ $real != "$dir" ]]; then
    printf 'refused: %s resolves to %s (a symlink in its path)' "$dir" "$real"
  else
    printf 'ok'
  fi
}

# Fills OPEN_IDS (device:inode of every file a process has open or mapped) and OPEN_PATHS (the
# paths of open files and of working directories), from /proc; no lsof or fuser needed.
declare -A OPEN_IDS=()
OPEN_PATHS=()
read_open_files() {
  local id path
  while IFS= read -r id; do OPEN_IDS[$id]=1; done < <(open_file_ids)
  while IFS= read -r -d '' path; do OPEN_PATHS+=("$path"); done < <(
    find -P /proc/[0-9]*/fd /proc/[0-9]*/cwd -maxdepth 1 -type l -printf '%l\0' 2>/dev/null || true
  )
}

# True when a process has a file open inside directory $1 or works in it.
open_inside() {
  local dir=$1 path
  for path in "${OPEN_PATHS[@]}"; do
    [[ $path == "$dir" || $path == "$dir"/* ]] && return 0
  done
  return 1
}

# Allocated bytes of an entry, on its own filesystem only.
entry_bytes() {
  local bytes
  bytes=$(du -s -x -B1 -- "$1" 2>/dev/null | cut -f1) || true
  printf '%s' "${bytes:-0}"
}

# Step result variables, set by each step and turned into JSON by step_json.
reset_step() {
  S_STATUS=ok S_DELETED=0 S_BYTES=0 S_FAILED=0 S_DELETED_NAMES=() S_KEPT=() S_AVAIL_BEFORE=0 S_AVAIL_AFTER=0
}

keep() {
  S_KEPT+=("$1"$'\t'"$2")
  log "keep $1: $2"
}

# Deletes one entry directly inside a checked directory (or, in a dry run, says it would).
delete_entry() {
  local dir=$1 name=$2 type=$3 bytes=$4 path="$1/$2"
  if [[ $DRY_RUN == true ]]; then
    log "would delete $path ($bytes bytes)"
  else
    local ok=0
    if [[ $type == d ]]; then rm -rf --one-file-system -- "$path" && ok=1; else rm -f -- "$path" && ok=1; fi
    if ((!ok)) || [[ -e $path || -L $path ]]; then
      S_FAILED=$((S_FAILED + 1))
      log "could not delete $path"
      return 0
    fi
    log "deleted $path ($bytes bytes)"
  fi
  S_DELETED=$((S_DELETED + 1))
  S_BYTES=$((S_BYTES + bytes))
  ((${#S_DELETED_NAMES[@]} < MAX_LISTED)) && S_DELETED_NAMES+=("$name")
  return 0
}

step_json() {
  local dir=$1 first=1 entry
  printf '{"dir":%s,"status":%s,"deleted":%s,"bytesFreed":%s,"failed":%s,"deletedNames":' \
    "$(json_str "$dir")" "$(json_str "$S_STATUS")" "$S_DELETED" "$S_BYTES" "$S_FAILED"
  json_array "${S_DELETED_NAMES[@]}"
  printf ',"kept":['
  for entry in "${S_KEPT[@]:0:MAX_LISTED}"; do
    if ((first)); then first=0; else printf ','; fi
    printf '{"name":%s,"why":%s}' "$(json_str "${entry%%$'\t'*}")" "$(json_str "${entry#*$'\t'}")"
  done
  printf '],"keptCount":%s,"availBytesBefore":%s,"availBytesAfter":%s}' \
    "${#S_KEPT[@]}" "$S_AVAIL_BEFORE" "$S_AVAIL_AFTER"
}

# Checks the directory of a step; returns 1 (step done) when it is missing or refused.
begin_dir_step() {
  local label=$1 dir=$2 state
  reset_step
  state=$(dir_state "$dir")
  case $state in
    ok) S_AVAIL_BEFORE=$(avail_bytes "$dir") ;;
    missing)
      S_STATUS='skipped: directory does not exist'
      log "$label: $dir does not exist, skipped"
      return 1
      ;;
    *)
      S_STATUS=$state
      PROBLEMS+=("$label: $state")
      log "$label: $state; nothing deleted there"
      return 1
      ;;
  esac
}

end_dir_step() {
  local label=$1 dir=$2
  S_AVAIL_AFTER=$(avail_bytes "$dir")
  if ((S_FAILED > 0)); then
    S_STATUS="failed: $S_FAILED entr(ies) could not be deleted"
    PROBLEMS+=("$label: $S_FAILED entr(ies) in $dir could not be deleted")
  elif [[ $DRY_RUN == true ]]; then
    S_STATUS=dry-run
  fi
}

# Minutes: days × 1440, never less than MIN_AGE_MINUTES.
cutoff_epoch() {
  local minutes=$(($1 * 1440))
  ((minutes < MIN_AGE_MINUTES)) && minutes=$MIN_AGE_MINUTES
  printf '%s' $(($(date +%s) - minutes * 60))
}

# Step 2: old backups, never the KeepNewestBackups newest.
clean_backups() {
  local dir=$BACKUP_DIR dev cutoff type mtime edev inode name kept_newest=0 bytes
  local -a candidates=() sorted=()
  if begin_dir_step backups "$dir"; then
    dev=$(stat -c %d -- "$dir")
    cutoff=$(cutoff_epoch "$BACKUP_DAYS")
    while IFS=/ read -r -d '' type mtime edev inode name; do
      if [[ $type == l ]]; then
        keep "$name" 'a symlink (never followed, never counted as a backup)'
      elif [[ $type != f && $type != d ]]; then
        keep "$name" 'not a regular file or directory'
      elif [[ $edev != "$dev" ]]; then
        keep "$name" "on another filesystem (a mount point); never crossed"
      elif [[ $name == *[[:cntrl:]]* ]]; then
        keep "$name" 'a control character in its name'
      else
        candidates+=("$mtime/$type/$edev:$inode/$name")
      fi
    done < <(find -P "$dir" -xdev -mindepth 1 -maxdepth 1 -name 'stemedb-backup-*' -printf '%y/%Ts/%D/%i/%f\0')
    if ((${#candidates[@]} > 0)); then
      mapfile -d '' -t sorted < <(printf '%s\0' "${candidates[@]}" | sort -z -t/ -k1,1nr -k4)
    fi
    local entry id
    for entry in "${sorted[@]}"; do
      IFS=/ read -r mtime type id name <<<"$entry"
      if ((kept_newest < KEEP_NEWEST)); then
        kept_newest=$((kept_newest + 1))
        keep "$name" "one of the $KEEP_NEWEST newest backup(s) (KeepNewestBackups), kept whatever its age"
      elif ((mtime > cutoff)); then
        keep "$name" "modified less than $BACKUP_DAYS day(s) ago"
      elif [[ $type == f && -n ${OPEN_IDS[$id]:-} ]]; then
        keep "$name" 'open by a process'
      elif [[ $type == d ]] && open_inside "$dir/$name"; then
        keep "$name" 'a process has a file open or its working directory inside it'
      else
        bytes=$(entry_bytes "$dir/$name")
        delete_entry "$dir" "$name" "$type" "${bytes:-0}"
      fi
    done
    end_dir_step backups "$dir"
  fi
  BACKUPS_JSON=$(step_json "$dir")
}

# Step 4: old core dumps.
clean_core_dumps() {
  local dir=$CORE_DIR dev cutoff type mtime edev inode blocks name
  if begin_dir_step core-dumps "$dir"; then
    dev=$(stat -c %d -- "$dir")
    cutoff=$(cutoff_epoch "$CORE_DAYS")
    while IFS=/ read -r -d '' type mtime edev inode blocks name; do
      if [[ $type == l ]]; then
        keep "$name" 'a symlink (never followed)'
      elif [[ $type != f ]]; then
        keep "$name" 'not a regular file'
      elif [[ $edev != "$dev" ]]; then
        keep "$name" 'on another filesystem; never crossed'
      elif [[ $name == *[[:cntrl:]]* ]]; then
        keep "$name" 'a control character in its name'
      elif ((mtime > cutoff)); then
        keep "$name" "modified less than $CORE_DAYS day(s) ago"
      elif [[ -n ${OPEN_IDS[$edev:$inode]:-} ]]; then
        keep "$name" 'open by a process'
      else
        delete_entry "$dir" "$name" f $((blocks * 512))
      fi
    done < <(find -P "$dir" -xdev -mindepth 1 -maxdepth 1 -name 'core.*' -printf '%y/%Ts/%D/%i/%b/%f\0')
    end_dir_step core-dumps "$dir"
  fi
  CORE_JSON=$(step_json "$dir")
}

# "1.5G" / "512B" / "0B" → bytes (0 when unreadable).
size_to_bytes() {
  local s=${1%B}
  [[ -z $s ]] && s=0
  numfmt --from=iec -- "$s" 2>/dev/null || echo 0
}

# Step 3: journal vacuum (journald decides what to delete: archived journal files only).
vacuum_journal() {
  local status out rc=0 freed=0 size line
  local -a command=(journalctl "--vacuum-time=${JOURNAL_DAYS}d")
  if ! command -v journalctl >/dev/null 2>&1; then
    status='skipped: journalctl not installed'
  elif [[ $DRY_RUN == true ]]; then
    status=dry-run
    log "would run: ${command[*]}"
  else
    log "running: ${command[*]}"
    out=$("${command[@]}" 2>&1) || rc=$?
    printf '%s\n' "$out" >&2
    while IFS= read -r line; do
      if [[ $line =~ freed\ ([0-9.]+[KMGTPE]?B?) ]]; then
        size=$(size_to_bytes "${BASH_REMATCH[1]}")
        freed=$((freed + ${size%.*}))
      fi
    done <<<"$out"
    if ((rc == 0)); then
      status=ok
    else
      status="failed: journalctl exited $rc"
      PROBLEMS+=("journal: ${command[*]} exited $rc")
    fi
  fi
  JOURNAL_JSON=$(printf '{"command":%s,"status":%s,"bytesFreed":%s}' \
    "$(json_str "${command[*]}")" "$(json_str "$status")" "$freed")
  JOURNAL_BYTES=$freed
}

# "Start server" and "Verify startup" of §1.
start_service() {
  local before action healthy=null
  before=$(systemctl is-active "$SERVICE" 2>/dev/null) || true
  before=${before:-unknown}
  if [[ $START_SERVICE != true ]]; then
    action=not-requested
  elif [[ $before == active ]]; then
    action=already-active
  elif [[ $DRY_RUN == true ]]; then
    action=would-start
    log "would run: systemctl start $SERVICE (now $before)"
  elif systemctl start "$SERVICE"; then
    action=started
    log "started $SERVICE"
  else
    action=start-failed
    PROBLEMS+=("service: systemctl start $SERVICE failed")
  fi
  if [[ $action == started || $action == already-active ]]; then
    if wait_healthy "$HEALTH_TIMEOUT"; then healthy=true; else
      healthy=false
      PROBLEMS+=("service: $HEALTH_URL not healthy within ${HEALTH_TIMEOUT} s")
    fi
  fi
  SERVICE_JSON=$(printf '{"name":%s,"stateBefore":%s,"action":%s,"healthUrl":%s,"healthy":%s}' \
    "$(json_str "$SERVICE")" "$(json_str "$before")" "$(json_str "$action")" "$(json_str "$HEALTH_URL")" "$healthy")
}

main() {
  read_parameters
  local before after avail_before avail_after status
  [[ $DRY_RUN == true ]] && log 'dry run: nothing will be deleted'
  log "df before:"
  df -h -- "$MOUNT_POINT" >&2
  before=$(df_json "$MOUNT_POINT")
  avail_before=$(avail_bytes "$MOUNT_POINT")
  read_open_files
  clean_backups
  local backup_bytes=$S_BYTES
  vacuum_journal
  clean_core_dumps
  local core_bytes=$S_BYTES
  start_service
  log "df after:"
  df -h -- "$MOUNT_POINT" >&2
  after=$(df_json "$MOUNT_POINT")
  avail_after=$(avail_bytes "$MOUNT_POINT")
  if ((${#PROBLEMS[@]} > 0)); then status=partial; elif [[ $DRY_RUN == true ]]; then status=dry-run; else status=cleaned; fi
  printf '{"status":%s,"dryRun":%s,"mountPoint":%s,"before":%s,"after":%s,"availBytesFreed":%s,"bytesFreed":%s,' \
    "$(json_str "$status")" "$DRY_RUN" "$(json_str "$MOUNT_POINT")" "$before" "$after" \
    $((avail_after - avail_before)) $((backup_bytes + JOURNAL_BYTES + core_bytes))
  printf '"steps":{"backups":%s,"journal":%s,"coreDumps":%s},"service":%s,' \
    "$BACKUPS_JSON" "$JOURNAL_JSON" "$CORE_JSON" "$SERVICE_JSON"
  printf '"wal":"not touched here: WAL segments are deleted only by the ArchiveWal automation, after S3 verification","problems":%s}\n' \
    "$(json_array "${PROBLEMS[@]}")"
  exit_on_problems
}

main "$@"
