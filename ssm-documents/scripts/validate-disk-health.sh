#!/usr/bin/env bash
# validate-disk-health.sh: the runbook's Validation, the five checks after a fix. Read-only, apart
# from the test write the runbook asks for (one assertion through the database: that write
# succeeding is what the check proves).
#
# Reads:
#   SSM_MountPoint                  required; the data mount (absolute path, no . or .. segment)
#   SSM_ServiceName                 systemd unit of the database (default stemedb-api)
#   SSM_BaseUrl                     the API on this host, http://localhost or 127.0.0.1 with an
#                                   optional port (default http://localhost:18180)
#   SSM_RecoveredUsedPercent        disk: used % must be below this (default 80)
#   SSM_RecoveredInodesFreePercent  inodes: free inodes % must be above this (default 10)
#   SSM_SinceMinutes                journal: how far back to look for "no space" (default 15)
#
# The checks, in order; each runs even when an earlier one failed:
#   disk     df's Use% of MountPoint (used / (used + avail)) is below RecoveredUsedPercent
#   inodes   free inodes are above RecoveredInodesFreePercent (no inode limit passes)
#   service  `systemctl is-active ServiceName` prints active
#   write    POST <BaseUrl>/v1/assert with the runbook's body returns 201
#   journal  no line matching "no space" (any case) in
#            `journalctl -u ServiceName --since "<SinceMinutes> minutes ago"`
# Prints progress on stderr and, as the last stdout line, one JSON object:
#   {"mountPoint","serviceName","assertUrl","sinceMinutes",
#    "checks":[{"name","ok","detail"}],"failed":[names],"healthy"}
# Exit: 0 healthy; 1 unhealthy (stderr: one line naming the failed checks); 2 invalid input.
set -euo pipefail

readonly MINUTES_RE='^[1-9][0-9]{0,4}$'
readonly ASSERT_BODY='{"concept_path": "test/disk", "predicate": "space_ok", "value": true}'
readonly TOOL_TIMEOUT_SECONDS=60
readonly DETAIL_MAX=300

CHECK_NAMES=()
CHECK_OKS=()
CHECK_DETAILS=()

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='validate-disk-health'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh

refuse() {
  local code=$1 reason=$2
  log "$reason"
  printf '{"status":"refused","reason":%s,"healthy":false}\n' "$(json_str "$reason")"
  exit "$code"
}

# One line, at most DETAIL_MAX characters (details end up in a one-line reason and in SNS).
one_line() {
  local s
  s=$(printf '%s' "$1" | tr '\n\r\t' '   ')
  printf '%s' "${s:0:DETAIL_MAX}"
}

record() {
  local name=$1 ok=$2 detail
  detail=$(one_line "$3")
  CHECK_NAMES+=("$name")
  CHECK_OKS+=("$ok")
  CHECK_DETAILS+=("$detail")
  log "$name: $([[ "$ok" == true ]] && echo ok || echo FAILED): $detail"
}

is_mount_point() { findmnt -n --mountpoint "$1" >/dev/null 2>&1; }

check_disk() {
  local mount_point=$1 limit=$2 used avail pct
  if ! is_mount_point "$mount_point"; then
    record disk false "$mount_point is not a mount point (the data filesystem is not mounted)"
    return 0
  fi
  if ! read -r used avail < <(timeout "$TOOL_TIMEOUT_SECONDS" df -B1 --output=used,avail -- "$mount_point" | tail -n 1); then
    record disk false "df $mount_point failed"
    return 0
  fi
  pct=$(percent "$used" $((used + avail)))
  if is_less "$pct" "$limit"; then
    record disk true "used ${pct}% is below ${limit}% ($avail bytes available)"
  else
    record disk false "used ${pct}% is not below ${limit}% ($avail bytes available)"
  fi
}

check_inodes() {
  local mount_point=$1 limit=$2 total free pct
  if ! is_mount_point "$mount_point"; then
    record inodes false "$mount_point is not a mount point (the data filesystem is not mounted)"
    return 0
  fi
  if ! read -r total free < <(timeout "$TOOL_TIMEOUT_SECONDS" df --output=itotal,iavail -- "$mount_point" | tail -n 1); then
    record inodes false "df -i $mount_point failed"
    return 0
  fi
  if [[ ! "$total" =~ ^[0-9]+$ ]] || ((total == 0)); then
    record inodes true "the filesystem reports no inode limit"
    return 0
  fi
  pct=$(percent "$free" "$total")
  if is_less "$limit" "$pct"; then
    record inodes true "${pct}% of inodes free ($free of $total) is above ${limit}%"
  else
    record inodes false "${pct}% of inodes free ($free of $total) is not above ${limit}%"
  fi
}

check_service() {
  local service=$1 out state
  out=$(timeout "$TOOL_TIMEOUT_SECONDS" systemctl is-active "$service" 2>&1) || true
  state=$(printf '%s\n' "$out" | head -n 1)
  case "$state" in
    active) record service true "$service is active" ;;
    inactive | failed | activating | deactivating | reloading | unknown)
      record service false "$service is $state, not active (systemctl is-active)" ;;
    *) record service false "systemctl is-active $service failed: $out" ;;
  esac
}

check_write() {
  local url=$1 out rc=0 code body
  out=$(curl -sS --connect-timeout 5 --max-time 30 -X POST -H 'Content-Type: application/json' \
    --data "$ASSERT_BODY" -w '\n%{http_code}' -- "$url" 2>&1) || rc=$?
  if ((rc != 0)); then
    record write false "POST $url failed: curl exit $rc: ${out%$'\n'000}"
    return 0
  fi
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  if [[ "$code" == 201 ]]; then
    record write true "POST $url returned 201"
  else
    record write false "POST $url returned $code, not 201: $body"
  fi
}

check_journal() {
  local service=$1 minutes=$2 out rc=0 matches count last
  out=$(timeout "$TOOL_TIMEOUT_SECONDS" journalctl -u "$service" --since "$minutes minutes ago" --no-pager -q 2>&1) || rc=$?
  if ((rc != 0)); then
    record journal false "journalctl -u $service failed (exit $rc), cannot rule out disk errors: $out"
    return 0
  fi
  matches=$(printf '%s\n' "$out" | grep -i 'no space' || true)
  if [[ -z "$matches" ]]; then
    record journal true "no \"no space\" in the $service journal of the last $minutes minutes"
    return 0
  fi
  count=$(printf '%s\n' "$matches" | wc -l)
  last=$(printf '%s\n' "$matches" | tail -n 1)
  record journal false "$count journal lines of $service in the last $minutes minutes say \"no space\"; last: $last"
}

checks_json() {
  local i first=1
  printf '['
  for i in "${!CHECK_NAMES[@]}"; do
    if ((first)); then first=0; else printf ','; fi
    printf '{"name":%s,"ok":%s,"detail":%s}' \
      "$(json_str "${CHECK_NAMES[$i]}")" "${CHECK_OKS[$i]}" "$(json_str "${CHECK_DETAILS[$i]}")"
  done
  printf ']'
}

main() {
  local mount_point service base_url used_limit inodes_limit minutes assert_url
  param mount_point MountPoint "$MOUNT_POINT_RE" ''
  param service ServiceName "$SERVICE_RE" stemedb-api
  param base_url BaseUrl "$BASE_URL_RE" http://localhost:18180
  param used_limit RecoveredUsedPercent "$PERCENT_RE" 80
  param inodes_limit RecoveredInodesFreePercent "$PERCENT_RE" 10
  param minutes SinceMinutes "$MINUTES_RE" 15
  assert_url="$base_url/v1/assert"

  check_disk "$mount_point" "$used_limit"
  check_inodes "$mount_point" "$inodes_limit"
  check_service "$service"
  check_write "$assert_url"
  check_journal "$service" "$minutes"

  local i failed=() reasons=() healthy=true failed_json='' name
  for i in "${!CHECK_NAMES[@]}"; do
    if [[ "${CHECK_OKS[$i]}" != true ]]; then
      failed+=("${CHECK_NAMES[$i]}")
      reasons+=("${CHECK_NAMES[$i]}: ${CHECK_DETAILS[$i]}")
      healthy=false
    fi
  done
  for name in ${failed[@]+"${failed[@]}"}; do
    failed_json+="${failed_json:+,}$(json_str "$name")"
  done

  printf '{"mountPoint":%s,"serviceName":%s,"assertUrl":%s,"sinceMinutes":%s,"checks":%s,"failed":[%s],"healthy":%s}\n' \
    "$(json_str "$mount_point")" "$(json_str "$service")" "$(json_str "$assert_url")" "$minutes" \
    "$(checks_json)" "$failed_json" "$healthy"

  if [[ "$healthy" != true ]]; then
    local names='' reason='' r
    for name in "${failed[@]}"; do names+="${names:+, }$name"; done
    for r in "${reasons[@]}"; do reason+="${reason:+; }$r"; done
    log "unhealthy: $names failed ($reason)"
    exit 1
  fi
  log "healthy: all five checks passed"
}

main "$@"
