#!/usr/bin/env bash
# wal-cleanup.sh: runbook §2 "Configure WAL retention" on one StemeDB host.
#
# Sets retention_days, max_segments and segment_size_mb in the [wal] table of the StemeDB config,
# restarts the service, waits for health and for the "WAL cleanup:" journal line. Rolls the config
# back when the service does not come back healthy with the new values.
#
# Reads (the Command document passes them as environment variables):
#   SSM_ConfigFile            absolute path of config.toml (e.g. /etc/stemedb/config.toml)
#   SSM_RetentionDays         [wal] retention_days, 1-3650
#   SSM_MaxSegments           [wal] max_segments, 1-1000000
#   SSM_SegmentSizeMb         [wal] segment_size_mb, 1-4096
#   SSM_ServiceName           systemd unit to restart (e.g. stemedb-api)
#   SSM_HealthUrl             http://localhost|127.0.0.1[:port]/path answering 2xx when healthy
#   SSM_HealthTimeoutSeconds  how long to wait for health after a restart, 1-600
#   SSM_LogWaitSeconds        how long to wait for the "WAL cleanup:" journal line, 0-600
#   SSM_DryRun                true: print the diff it would apply, change nothing, restart nothing
#
# The edit (lib/config-edit.sh, shared with storage-settings.sh):
# - only the three keys of the [wal] table change; every other byte of the file stays as it was
#   (other tables, comments, order, CRLF line ends, whether the file ends with a newline). A key
#   present in [wal] is replaced in place (its indentation, spacing and trailing comment kept);
#   a missing key is added after the last key of [wal]; a missing [wal] table is appended at the
#   end. Keys with the same names in other tables ([backup] retention_days) are not touched.
# - refused, with nothing changed, when the file cannot be edited safely: [[wal]], two [wal]
#   tables, wal defined as dotted keys or an inline table, a key defined twice, a value followed
#   by something other than a comment, a symlink as ConfigFile.
# - idempotent: when the file already holds the values, nothing is written and the service is NOT
#   restarted (a restart would only cost availability; StemeDB applies retention at start, so a
#   config written by an earlier run that never restarted is the one case this leaves to a human
#   or to a manual restart). The run then only checks health and fails if the service is down.
# - the old file is copied next to it as <ConfigFile>.bak-<UTC yyyymmddThhmmssZ> first, and the
#   new file is written to a temp file in the same directory and renamed over the old one
#   (atomic). Both are first written inside a directory of this run's own next to the config
#   (mktemp -d: mode 0700, unpredictable name), so no one but root can swap them for a symlink;
#   the backup then gets its name with link(2) (ln -T), which is exclusive and never follows a
#   symlink: a name already taken, by a file or a symlink planted there, is refused and the next
#   name (-2, -3, ...) tried; nothing is ever written through a path that existed before. The
#   rollback restores from this run's own copy, not from the backup's name. The config lives on the root disk, not on the (possibly full) data disk; if the
#   root disk is full as well, the backup fails and nothing is changed. Other temp files go to a
#   tmpfs (/run or /dev/shm).
# After a change: systemctl restart, then health (curl, per-try timeout, bounded by
# HealthTimeoutSeconds; stops early when the unit is failed/inactive), then up to LogWaitSeconds
# for a "WAL cleanup:" line in `journalctl -u <unit> --since <restart time>`. A missing line is a
# warning (exit 0, "warning" in the JSON): the new config is in effect and the service healthy;
# only the confirmation is missing. If the restart fails or health does not come: the backup is
# restored (byte for byte), the service restarted and health checked again, and the script exits 1
# with a reason saying it rolled back and whether health came back.
#
# Prints: progress and (DryRun) the unified diff; the last stdout line is one JSON object:
#   {"configFile","service","dryRun","wouldChange","configChanged","sectionCreated","backupFile",
#    "restarted","healthyBefore","healthy","walCleanupLogLine","warning","rolledBack",
#    "rollbackHealthy","reason","before":{...},"requested":{...},"after":{...}}
#   before/after hold retention_days, max_segments, segment_size_mb as found in the file before
#   and at the end (null when absent); configChanged is true when the file at the end differs
#   from the file at the start (false after a rollback).
# Exit: 0 done (also: nothing to change and healthy; log line missing), 1 refused or failed
#   (one-line reason on stderr), 2 bad parameters.

set -euo pipefail
export LC_ALL=C

readonly WAL_KEYS=(retention_days max_segments segment_size_mb)
readonly LOG_MARKER='WAL cleanup:'

CONFIG='' RETENTION='' MAX_SEGMENTS='' SEGMENT_MB='' SERVICE='' HEALTH_URL=''
HEALTH_TIMEOUT='' LOG_WAIT='' DRY_RUN=''
# shellcheck disable=SC2034 # used by lib/config-edit.sh
WORK_DIR='' CANDIDATE='' META='' BACKUP='' BACKUP_COPY='' PRIVATE_DIR=''
declare -A BEFORE=() AFTER=()
SECTION_CREATED=false WOULD_CHANGE=false CONFIG_CHANGED=false RESTARTED=false
HEALTHY_BEFORE=false HEALTHY=false LOG_LINE='' WARNING='' ROLLED_BACK=false ROLLBACK_HEALTHY=''
REASON=''

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='wal-cleanup'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh
# shellcheck source=lib/service-health.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/service-health.sh" # stemedb:inline lib/service-health.sh
# shellcheck source=lib/file-backup.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/file-backup.sh" # stemedb:inline lib/file-backup.sh
# shellcheck source=lib/config-edit.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/config-edit.sh" # stemedb:inline lib/config-edit.sh

json_str() {
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      '"') out+='\"' ;;
      "\\") out+="\\\\" ;;
      $'\n') out+='\n' ;;
      $'\r') out+='\r' ;;
      $'\t') out+='\t' ;;
      *)
        if [[ $c < ' ' ]]; then out+=$(printf '\\u%04x' "'$c"); else out+=$c; fi
        ;;
    esac
  done
  printf '"%s"' "$out"
}

json_values() { json_toml_values "$1" "${WAL_KEYS[@]}"; }

print_result() {
  # shellcheck disable=SC2034 # read through the nameref in json_values
  local -A requested=([retention_days]=$RETENTION [max_segments]=$MAX_SEGMENTS [segment_size_mb]=$SEGMENT_MB)
  printf '{"configFile":%s,"service":%s,"dryRun":%s,"wouldChange":%s,"configChanged":%s,' \
    "$(json_str "$CONFIG")" "$(json_str "$SERVICE")" "$DRY_RUN" "$WOULD_CHANGE" "$CONFIG_CHANGED"
  printf '"sectionCreated":%s,"backupFile":%s,"restarted":%s,"healthyBefore":%s,"healthy":%s,' \
    "$SECTION_CREATED" "$(json_or_null "$BACKUP")" "$RESTARTED" "$HEALTHY_BEFORE" "$HEALTHY"
  printf '"walCleanupLogLine":%s,"warning":%s,"rolledBack":%s,"rollbackHealthy":%s,"reason":%s,' \
    "$(json_or_null "$LOG_LINE")" "$(json_or_null "$WARNING")" "$ROLLED_BACK" "${ROLLBACK_HEALTHY:-null}" \
    "$(json_or_null "$REASON")"
  printf '"before":%s,"requested":%s,"after":%s}\n' \
    "$(json_values BEFORE)" "$(json_values requested)" "$(json_values AFTER)"
}

# Exit 1 with a reason: the JSON result on stdout, the reason on stderr.
fail() {
  REASON=$1
  print_result
  printf '%s\n' "wal-cleanup: $REASON" >&2
  exit 1
}

# The Command document checks the same patterns before anything runs; checked again here so the
# script is safe when run by itself.
read_parameters() {
  RETENTION=${SSM_RetentionDays:-}
  MAX_SEGMENTS=${SSM_MaxSegments:-}
  SEGMENT_MB=${SSM_SegmentSizeMb:-}
  LOG_WAIT=${SSM_LogWaitSeconds-30}
  DRY_RUN=${SSM_DryRun-false}
  in_range "$RETENTION" 1 3650 || bad_parameter "RetentionDays '$RETENTION' must be a whole number from 1 to 3650"
  in_range "$MAX_SEGMENTS" 1 1000000 || bad_parameter "MaxSegments '$MAX_SEGMENTS' must be from 1 to 1000000"
  in_range "$SEGMENT_MB" 1 4096 || bad_parameter "SegmentSizeMb '$SEGMENT_MB' must be from 1 to 4096"
  in_range "$LOG_WAIT" 0 600 || bad_parameter "LogWaitSeconds '$LOG_WAIT' must be from 0 to 600"
  [[ $DRY_RUN == true || $DRY_RUN == false ]] || bad_parameter "DryRun '$DRY_RUN' must be true or false"
  read_edit_parameters "${SSM_ConfigFile:-}" "${SSM_ServiceName:-}" "${SSM_HealthUrl:-}" \
    "${SSM_HealthTimeoutSeconds-60}"
  # Normalise numbers (leading zeros are not accepted by the patterns, but stay safe).
  RETENTION=$((10#$RETENTION)) MAX_SEGMENTS=$((10#$MAX_SEGMENTS)) SEGMENT_MB=$((10#$SEGMENT_MB))
}

check_tools() {
  local t
  for t in awk cmp cp ln mv mktemp chmod chown date od tail tr grep sleep curl systemctl journalctl; do
    command -v "$t" >/dev/null 2>&1 || fail "required command '$t' not found on PATH"
  done
}

build_candidate() {
  local rc=0
  toml_set_keys "$CONFIG" "$CANDIDATE" "$META" wal \
    "retention_days=$RETENTION" "max_segments=$MAX_SEGMENTS" "segment_size_mb=$SEGMENT_MB" || rc=$?
  toml_read_meta "$META" BEFORE
  if [[ -n $TOML_ERROR ]]; then fail "refusing to edit $CONFIG: $TOML_ERROR (nothing changed)"; fi
  ((rc == 0)) || fail "could not compute the new $CONFIG (awk exit $rc; nothing changed)"
  [[ $TOML_SECTION == created ]] && SECTION_CREATED=true
  local k
  for k in "${WAL_KEYS[@]}"; do AFTER[$k]=${BEFORE[$k]:-}; done
  if cmp -s -- "$CONFIG" "$CANDIDATE"; then WOULD_CHANGE=false; else WOULD_CHANGE=true; fi
}

# Waits until the next full second and prints it as journalctl's --since (local time). The old
# process only logs "WAL cleanup:" at its own start, before this second, so every such line from
# this second on comes from the restarted process (and `--since` has one-second resolution).
next_second_since() {
  local target=$(($(date +%s) + 1))
  while (($(date +%s) < target)); do sleep 0.05; done
  date -d "@$target" '+%Y-%m-%d %H:%M:%S'
}

find_log_line() {
  local out
  out=$(journalctl -u "$SERVICE" --since "$1" --no-pager -q -o cat 2>/dev/null) || return 1
  grep -m 1 -F -- "$LOG_MARKER" <<<"$out"
}

wait_for_log_line() {
  local since=$1 deadline=$((SECONDS + LOG_WAIT)) line
  while :; do
    if line=$(find_log_line "$since"); then
      LOG_LINE=$line
      log "journal: $line"
      return 0
    fi
    ((SECONDS < deadline)) || break
    sleep 0.5
  done
  WARNING="no '$LOG_MARKER' line in journalctl -u $SERVICE within ${LOG_WAIT} s of the restart; the new [wal] settings are in place and the service is healthy, but StemeDB did not confirm a cleanup run"
  log "warning: $WARNING"
}

# After a rollback the old values are the ones in effect (lib/config-edit.sh calls this).
reset_after_values() {
  local k
  for k in "${WAL_KEYS[@]}"; do AFTER[$k]=${BEFORE[$k]:-}; done
}

apply_change() {
  install_candidate
  # shellcheck disable=SC2034 # read through the nameref in json_values
  AFTER=([retention_days]=$RETENTION [max_segments]=$MAX_SEGMENTS [segment_size_mb]=$SEGMENT_MB)
  local since
  since=$(next_second_since)
  restart_healthy_or_roll_back 'the new [wal] settings'
  wait_for_log_line "$since"
}

main() {
  read_parameters
  start_config_edit
  if [[ $WOULD_CHANGE == false ]]; then
    log "$CONFIG already has retention_days=$RETENTION, max_segments=$MAX_SEGMENTS, segment_size_mb=$SEGMENT_MB in [wal]: nothing to change, not restarting"
    if [[ $DRY_RUN == true ]]; then
      HEALTHY=$HEALTHY_BEFORE
    elif wait_healthy "$HEALTH_TIMEOUT"; then
      HEALTHY=true
    else
      fail "$CONFIG needs no change (not restarted), but $SERVICE is not healthy at $HEALTH_URL"
    fi
    print_result
    return 0
  fi
  if [[ $DRY_RUN == true ]]; then
    log "DryRun: would apply this change to $CONFIG, back it up and restart $SERVICE:"
    show_diff
    HEALTHY=$HEALTHY_BEFORE
    print_result
    return 0
  fi
  apply_change
  print_result
}

main "$@"
