#!/usr/bin/env bash
# storage-settings.sh: runbook "Prevention", "Configuration Changes" (compaction and backup
# cleanup) on one StemeDB host: sets the automatic compaction keys of [storage] and the backup
# retention keys of [backup] in the StemeDB config, as in the runbook's example:
#   [storage]  compaction_enabled, compaction_interval_hours, compaction_threshold_mb
#   [backup]   retention_days, compression_enabled
#
# Reads (the Command document passes them as environment variables):
#   SSM_ConfigFile               absolute path of config.toml (e.g. /etc/stemedb/config.toml)
#   SSM_CompactionEnabled        [storage] compaction_enabled, true|false
#   SSM_CompactionIntervalHours  [storage] compaction_interval_hours, 1-8760
#   SSM_CompactionThresholdMb    [storage] compaction_threshold_mb, 1-1000000
#   SSM_BackupRetentionDays      [backup] retention_days, 1-3650
#   SSM_BackupCompressionEnabled [backup] compression_enabled, true|false
#   SSM_RestartService           true: restart the service after a change, so it applies the
#                                settings now (health checked, rolled back when unhealthy);
#                                false (default): the runbook restarts only for [wal], so the
#                                new settings apply at the service's next restart
#   SSM_ServiceName              systemd unit (e.g. stemedb-api)
#   SSM_HealthUrl                http://localhost|127.0.0.1[:port]/path answering 2xx when healthy
#   SSM_HealthTimeoutSeconds     how long to wait for health after a restart, 1-600
#   SSM_DryRun                   true: print the diff it would apply, change nothing
#
# The edit is lib/config-edit.sh's (the one WalCleanup uses for [wal]): only the five keys
# change, every other byte of the file stays; a missing key is added to its table, a missing table
# appended; refused with nothing changed when the file cannot be edited safely. Idempotent: a file
# that already holds the values is not written (and the service not restarted). Before a change
# the old file is backed up next to it as <ConfigFile>.bak-<UTC yyyymmddThhmmssZ>, and the new
# one is written atomically (temp file next to it, renamed). After the write the file is read back;
# if it is not what was written, or (RestartService=true) the restart fails or health does not
# come, the backup is restored byte for byte (and the service restarted) and the script exits 1.
#
# Prints: progress and (DryRun) the unified diff; the last stdout line is one JSON object:
#   {"configFile","service","dryRun","wouldChange","configChanged","tablesCreated","backupFile",
#    "restartRequested","restarted","pendingRestart","healthy","rolledBack","rollbackHealthy",
#    "reason","before":{"storage":{...},"backup":{...}},"requested":{...},"after":{...}}
#   before/after hold the five values as found in the file before and at the end (null when
#   absent); pendingRestart: the file changed and the service was not restarted.
# Exit: 0 done (also: nothing to change), 1 refused or failed (one-line reason on stderr),
#   2 bad parameters.

set -euo pipefail
export LC_ALL=C

# <table>.<key>, in the order they are reported and added.
readonly SETTINGS=(storage.compaction_enabled storage.compaction_interval_hours storage.compaction_threshold_mb
  backup.retention_days backup.compression_enabled)

# shellcheck disable=SC2034 # HEALTH_URL, HEALTH_TIMEOUT: set by read_edit_parameters, used by lib/config-edit.sh
CONFIG='' SERVICE='' HEALTH_URL='' HEALTH_TIMEOUT='' DRY_RUN='' RESTART=''
COMPACTION_ENABLED='' COMPACTION_HOURS='' COMPACTION_MB='' BACKUP_DAYS='' BACKUP_COMPRESSION=''
# shellcheck disable=SC2034 # used by lib/config-edit.sh
WORK_DIR='' CANDIDATE='' META='' BACKUP='' BACKUP_COPY='' PRIVATE_DIR=''
declare -A BEFORE=() AFTER=() REQUESTED=()
TABLES_CREATED=() WOULD_CHANGE=false CONFIG_CHANGED=false RESTARTED=false
HEALTHY_BEFORE=false HEALTHY=false ROLLED_BACK=false ROLLBACK_HEALTHY='' REASON=''

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='storage-settings'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh
# shellcheck source=lib/service-health.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/service-health.sh" # stemedb:inline lib/service-health.sh
# shellcheck source=lib/file-backup.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/file-backup.sh" # stemedb:inline lib/file-backup.sh
# shellcheck source=lib/config-edit.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/config-edit.sh" # stemedb:inline lib/config-edit.sh

# A value of the file or the request: true/false as JSON booleans, integers as numbers.
json_setting() { if [[ $1 == true || $1 == false ]]; then printf '%s' "$1"; else json_toml_value "$1"; fi; }

# {"storage":{...},"backup":{...}} of an associative array keyed <table>.<key>.
json_settings() {
  local -n settings=$1
  local setting table='' out='{'
  for setting in "${SETTINGS[@]}"; do
    if [[ ${setting%%.*} != "$table" ]]; then
      [[ -n $table ]] && out+='},'
      table=${setting%%.*}
      out+="\"$table\":{"
    else
      out+=','
    fi
    out+="\"${setting#*.}\":$(json_setting "${settings[$setting]:-}")"
  done
  printf '%s}}' "$out"
}

print_result() {
  local pending=false
  [[ $CONFIG_CHANGED == true && $RESTARTED == false ]] && pending=true
  printf '{"configFile":%s,"service":%s,"dryRun":%s,"wouldChange":%s,"configChanged":%s,' \
    "$(json_str "$CONFIG")" "$(json_str "$SERVICE")" "${DRY_RUN:-false}" "$WOULD_CHANGE" "$CONFIG_CHANGED"
  printf '"tablesCreated":%s,"backupFile":%s,"restartRequested":%s,"restarted":%s,"pendingRestart":%s,' \
    "$(json_array "${TABLES_CREATED[@]}")" "$(json_or_null "$BACKUP")" "${RESTART:-false}" "$RESTARTED" "$pending"
  printf '"healthy":%s,"rolledBack":%s,"rollbackHealthy":%s,"reason":%s,' \
    "$HEALTHY" "$ROLLED_BACK" "${ROLLBACK_HEALTHY:-null}" "$(json_or_null "$REASON")"
  printf '"before":%s,"requested":%s,"after":%s}\n' \
    "$(json_settings BEFORE)" "$(json_settings REQUESTED)" "$(json_settings AFTER)"
}

# Exit 1 with a reason: the JSON result on stdout, the reason on stderr.
fail() { end_run 1 "$1"; }

is_bool() { [[ $1 == true || $1 == false ]]; }

read_parameters() {
  COMPACTION_ENABLED=${SSM_CompactionEnabled:-}
  COMPACTION_HOURS=${SSM_CompactionIntervalHours:-}
  COMPACTION_MB=${SSM_CompactionThresholdMb:-}
  BACKUP_DAYS=${SSM_BackupRetentionDays:-}
  BACKUP_COMPRESSION=${SSM_BackupCompressionEnabled:-}
  RESTART=${SSM_RestartService-false}
  DRY_RUN=${SSM_DryRun-true}
  is_bool "$COMPACTION_ENABLED" || bad_parameter "CompactionEnabled '$COMPACTION_ENABLED' must be true or false"
  in_range "$COMPACTION_HOURS" 1 8760 ||
    bad_parameter "CompactionIntervalHours '$COMPACTION_HOURS' must be a whole number from 1 to 8760"
  in_range "$COMPACTION_MB" 1 1000000 ||
    bad_parameter "CompactionThresholdMb '$COMPACTION_MB' must be a whole number from 1 to 1000000"
  in_range "$BACKUP_DAYS" 1 3650 || bad_parameter "BackupRetentionDays '$BACKUP_DAYS' must be from 1 to 3650"
  is_bool "$BACKUP_COMPRESSION" ||
    bad_parameter "BackupCompressionEnabled '$BACKUP_COMPRESSION' must be true or false"
  is_bool "$RESTART" || bad_parameter "RestartService '$RESTART' must be true or false"
  is_bool "$DRY_RUN" || bad_parameter "DryRun '$DRY_RUN' must be true or false"
  read_edit_parameters "${SSM_ConfigFile:-}" "${SSM_ServiceName:-}" "${SSM_HealthUrl:-}" \
    "${SSM_HealthTimeoutSeconds-60}"
  COMPACTION_HOURS=$((10#$COMPACTION_HOURS)) COMPACTION_MB=$((10#$COMPACTION_MB)) BACKUP_DAYS=$((10#$BACKUP_DAYS))
  REQUESTED=(
    [storage.compaction_enabled]=$COMPACTION_ENABLED
    [storage.compaction_interval_hours]=$COMPACTION_HOURS
    [storage.compaction_threshold_mb]=$COMPACTION_MB
    [backup.retention_days]=$BACKUP_DAYS
    [backup.compression_enabled]=$BACKUP_COMPRESSION
  )
}

check_tools() {
  local t
  for t in awk cmp cp ln mv mktemp chmod chown date od tail tr curl systemctl; do
    command -v "$t" >/dev/null 2>&1 || fail "required command '$t' not found on PATH"
  done
}

# The key=value pairs of one table, as requested.
requested_pairs() {
  local setting
  for setting in "${SETTINGS[@]}"; do
    [[ ${setting%%.*} == "$1" ]] && printf '%s=%s\n' "${setting#*.}" "${REQUESTED[$setting]}"
  done
}

# Edits [storage] into a stage file, then [backup] into the candidate; reads what each found.
build_candidate() {
  local stage=$WORK_DIR/stage table src out rc pairs
  for table in storage backup; do
    mapfile -t pairs < <(requested_pairs "$table")
    src=$CONFIG out=$stage
    [[ $table == backup ]] && src=$stage out=$CANDIDATE
    rc=0
    toml_set_keys "$src" "$out" "$META" "$table" "${pairs[@]}" || rc=$?
    toml_read_meta "$META" BEFORE "$table."
    if [[ -n $TOML_ERROR ]]; then fail "refusing to edit $CONFIG: $TOML_ERROR (nothing changed)"; fi
    ((rc == 0)) || fail "could not compute the new $CONFIG (awk exit $rc; nothing changed)"
    if [[ $TOML_SECTION == created ]]; then TABLES_CREATED+=("$table"); fi
  done
  reset_after_values
  if cmp -s -- "$CONFIG" "$CANDIDATE"; then WOULD_CHANGE=false; else WOULD_CHANGE=true; fi
}

# The values in effect in the file: the old ones (before a change, after a rollback).
reset_after_values() {
  local k
  for k in "${!BEFORE[@]}"; do AFTER[$k]=${BEFORE[$k]}; done
}

apply_change() {
  install_candidate
  local k
  # shellcheck disable=SC2034 # read through the nameref in json_settings
  for k in "${!REQUESTED[@]}"; do AFTER[$k]=${REQUESTED[$k]}; done
  if [[ $RESTART == true ]]; then
    restart_healthy_or_roll_back 'the new [storage] and [backup] settings'
    return 0
  fi
  if ! cmp -s -- "$CONFIG" "$CANDIDATE"; then
    roll_back "$CONFIG does not hold what was written (another writer?)" false
  fi
  log "not restarting $SERVICE (RestartService=false): the new settings apply at its next restart"
}

main() {
  read_parameters
  start_config_edit
  HEALTHY=$HEALTHY_BEFORE
  if [[ $WOULD_CHANGE == false ]]; then
    log "$CONFIG already has these [storage] and [backup] settings: nothing to change, not restarting"
  elif [[ $DRY_RUN == true ]]; then
    log "DryRun: would apply this change to $CONFIG and back it up$([[ $RESTART == true ]] && printf ' and restart %s' "$SERVICE"):"
    show_diff
  else
    apply_change
  fi
  print_result
}

main "$@"
