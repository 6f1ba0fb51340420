#!/usr/bin/env bash
# disk-report.sh: the runbook's Quick Diagnosis for the StemeDB data filesystem, read-only.
#
# Reads:
#   SSM_MountPoint                  required; the data mount (absolute path, no . or .. segment)
#   SSM_WalDir                      WAL directory; empty = <MountPoint>/wal
#   SSM_DbDir                       database directory; empty = <MountPoint>/db
#   SSM_EmergencyUsedPercent        used % above which §1 Emergency Cleanup applies (default 98)
#   SSM_InodesExhaustedFreePercent  free-inode % below which inodes count as exhausted (default 10)
#   SSM_InodesExhaustedFree         free-inode count below which inodes count as exhausted (default 1000)
#   SSM_RecoveredUsedPercent        Validation: used % must be below this (default 80)
#   SSM_RecoveredInodesFreePercent  Validation: free-inode % must be above this (default 10)
#
# Prints on stdout the human report (df -h, df -i, du of WAL and DB, WAL segments and the oldest
# one, largest directories) and, as the last line, one JSON object:
#   {"mountPoint","device","filesystem","sizeBytes","usedBytes","availBytes","usedPercent",
#    "freePercent","inodesTotal","inodesUsed","inodesFree","inodesFreePercent","walDir","walBytes",
#    "walSegments","oldestWalAgeDays"(null when none),"dbDir","dbBytes","otherBytes",
#    "largestDirs":[{"path","bytes"}],"suggestedSection","reasons":[...],"recovered","warnings":[...]}
# usedPercent is df's Use%: used / (used + avail) × 100 (two decimals), as in the runbook's df -h.
# suggestedSection follows the runbook's diagnosis tree, in order: used above EmergencyUsedPercent
# → EmergencyCleanup; space short (used ≥ RecoveredUsedPercent) and the WAL using the most space
# (of WAL, DB and everything else on the mount) → WalCleanup; space short and the DB using the
# most → CompactDatabase; inodes exhausted (free % below InodesExhaustedFreePercent or fewer than
# InodesExhaustedFree free) → InodeCleanup; otherwise ("normal growth") ExpandVolume. It is the section to run if the disk needs help: check "recovered"
# (the runbook's Validation levels) first; true means the disk is healthy.
# Exit: 0 report printed; 2 invalid input; 3 MountPoint is not a mount point. Changes nothing.
set -euo pipefail

readonly COUNT_RE='^[0-9]{1,12}$'
readonly DU_TIMEOUT_SECONDS=300
readonly LARGEST_DIRS=10

WARNINGS=()

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='disk-report'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh

refuse() {
  local code=$1 reason=$2
  printf 'disk-report: %s\n' "$reason" >&2
  printf '{"status":"refused","reason":%s}\n' "$(json_str "$reason")"
  exit "$code"
}

# Disk usage of a directory in bytes, into variable $1 (0 with a warning when absent).
dir_bytes() {
  local result=$1 dir=$2 label=$3 out
  if [[ ! -d "$dir" ]]; then
    WARNINGS+=("$label directory $dir does not exist")
    printf -v "$result" '0'
    return 0
  fi
  if [[ "$(df --output=target -- "$dir" | tail -n 1)" != "$MOUNT_POINT" ]]; then
    WARNINGS+=("$label directory $dir is not on $MOUNT_POINT")
  fi
  out=$(timeout "$DU_TIMEOUT_SECONDS" du -s -x -B1 -- "$dir" 2>/dev/null | tail -n 1 | cut -f1) || true
  if [[ -z "$out" ]]; then
    WARNINGS+=("du of $label directory $dir failed or timed out")
    out=0
  fi
  printf -v "$result" '%s' "$out"
}

# Prints "<count> <oldest mtime epoch>" of the WAL segments (*.log) directly in the WAL dir.
wal_segments() {
  local dir=$1
  if [[ ! -d "$dir" ]]; then
    printf '0 '
    return 0
  fi
  find "$dir" -maxdepth 1 -type f -name '*.log' -printf '%T@\n' 2>/dev/null |
    awk 'NR == 1 || $1 < min { min = $1 } END { printf "%d %s", NR, (NR ? min : "") }'
}

# "<bytes>\t<path>" of the largest directories (two levels deep) on the mount, biggest first.
# One du pass serves both the human report and the JSON.
largest_dirs() {
  timeout "$DU_TIMEOUT_SECONDS" du -x -B1 -d 2 -- "$MOUNT_POINT" 2>/dev/null | sort -rn |
    awk -F '\t' -v mp="$MOUNT_POINT" '$2 != mp' | head -n "$LARGEST_DIRS" || true
}

largest_dirs_json() {
  local first=1 bytes path
  printf '['
  while IFS=$'\t' read -r bytes path; do
    [[ -n "$path" ]] || continue
    if ((first)); then first=0; else printf ','; fi
    printf '{"path":%s,"bytes":%s}' "$(json_str "$path")" "$bytes"
  done <<<"$1"
  printf ']'
}

human() { numfmt --to=iec "$1"; }

print_human_report() {
  local wal_dir=$1 wal_bytes=$2 db_dir=$3 db_bytes=$4 segments=$5 oldest_days=$6 largest=$7 bytes path
  echo "== df -h $MOUNT_POINT"
  df -h -- "$MOUNT_POINT"
  echo "== df -i $MOUNT_POINT"
  df -i -- "$MOUNT_POINT"
  echo "== du -sh WAL and DB"
  printf '%s\t%s\n' "$(human "$wal_bytes")" "$wal_dir" "$(human "$db_bytes")" "$db_dir"
  echo "== WAL segments: $segments, oldest ${oldest_days:-none} days"
  echo "== largest directories"
  while IFS=$'\t' read -r bytes path; do
    [[ -n "$path" ]] && printf '%s\t%s\n' "$(human "$bytes")" "$path"
  done <<<"$largest"
  return 0
}

main() {
  local mount_point wal_dir db_dir emergency_used inodes_exhausted_pct inodes_exhausted_free
  local recovered_used recovered_inodes
  param mount_point MountPoint "$MOUNT_POINT_RE" ''
  readonly MOUNT_POINT=$mount_point
  param wal_dir WalDir "$OPTIONAL_DIR_RE" ''
  param db_dir DbDir "$OPTIONAL_DIR_RE" ''
  param emergency_used EmergencyUsedPercent "$PERCENT_RE" 98
  param inodes_exhausted_pct InodesExhaustedFreePercent "$PERCENT_RE" 10
  param inodes_exhausted_free InodesExhaustedFree "$COUNT_RE" 1000
  param recovered_used RecoveredUsedPercent "$PERCENT_RE" 80
  param recovered_inodes RecoveredInodesFreePercent "$PERCENT_RE" 10
  [[ -n "$wal_dir" ]] || wal_dir=${MOUNT_POINT%/}/wal
  [[ -n "$db_dir" ]] || db_dir=${MOUNT_POINT%/}/db

  findmnt -n --mountpoint "$MOUNT_POINT" >/dev/null 2>&1 || refuse 3 "$MOUNT_POINT is not a mount point"
  local device fstype size used avail itotal iused ifree
  device=$(findmnt -n -r -o SOURCE --mountpoint "$MOUNT_POINT" | tail -n 1)
  fstype=$(findmnt -n -r -o FSTYPE --mountpoint "$MOUNT_POINT" | tail -n 1)
  read -r size used avail < <(df -B1 --output=size,used,avail -- "$MOUNT_POINT" | tail -n 1)
  read -r itotal iused ifree < <(df --output=itotal,iused,iavail -- "$MOUNT_POINT" | tail -n 1)

  local used_pct free_pct inodes_free_pct wal_bytes db_bytes other_bytes segments oldest oldest_days=''
  used_pct=$(percent "$used" $((used + avail)))
  free_pct=$(percent "$avail" "$size")
  if ((itotal > 0)); then inodes_free_pct=$(percent "$ifree" "$itotal"); else inodes_free_pct=100; fi
  dir_bytes wal_bytes "$wal_dir" WAL
  dir_bytes db_bytes "$db_dir" DB
  other_bytes=$((used - wal_bytes - db_bytes))
  ((other_bytes >= 0)) || other_bytes=0
  read -r segments oldest <<<"$(wal_segments "$wal_dir")"
  if [[ -n "${oldest:-}" ]]; then
    oldest_days=$(awk -v m="$oldest" -v now="$(date +%s)" 'BEGIN { printf "%.2f", (now - m) / 86400 }')
  fi

  # The runbook's diagnosis tree.
  local section reasons=() recovered=false inodes_exhausted=false space_short=false
  if is_less "$inodes_free_pct" "$inodes_exhausted_pct" || ((itotal > 0 && ifree < inodes_exhausted_free)); then
    inodes_exhausted=true
  fi
  is_less "$used_pct" "$recovered_used" || space_short=true
  if is_less "$emergency_used" "$used_pct"; then
    section=EmergencyCleanup
    reasons+=("used ${used_pct}% is above ${emergency_used}%")
  elif [[ "$space_short" == true ]] && ((wal_bytes >= db_bytes && wal_bytes >= other_bytes)); then
    section=WalCleanup
    reasons+=("used ${used_pct}% and the WAL uses the most space: $wal_bytes bytes (DB $db_bytes, other $other_bytes)")
  elif [[ "$space_short" == true ]] && ((db_bytes > wal_bytes && db_bytes >= other_bytes)); then
    section=CompactDatabase
    reasons+=("used ${used_pct}% and the DB uses the most space: $db_bytes bytes (WAL $wal_bytes, other $other_bytes)")
  elif [[ "$inodes_exhausted" == true ]]; then
    section=InodeCleanup
    reasons+=("inodes exhausted: $ifree free of $itotal (${inodes_free_pct}%)")
  else
    section=ExpandVolume
    reasons+=("no cleanup option matched: normal growth")
  fi
  if is_less "$used_pct" "$recovered_used" && is_less "$recovered_inodes" "$inodes_free_pct"; then
    recovered=true
  fi

  local largest
  largest=$(largest_dirs)
  print_human_report "$wal_dir" "$wal_bytes" "$db_dir" "$db_bytes" "$segments" "$oldest_days" "$largest"
  log "suggested section: $section (${reasons[*]}); recovered: $recovered"

  printf '{"mountPoint":%s,"device":%s,"filesystem":%s,"sizeBytes":%s,"usedBytes":%s,"availBytes":%s,' \
    "$(json_str "$MOUNT_POINT")" "$(json_str "$device")" "$(json_str "$fstype")" "$size" "$used" "$avail"
  printf '"usedPercent":%s,"freePercent":%s,"inodesTotal":%s,"inodesUsed":%s,"inodesFree":%s,"inodesFreePercent":%s,' \
    "$used_pct" "$free_pct" "$itotal" "$iused" "$ifree" "$inodes_free_pct"
  printf '"walDir":%s,"walBytes":%s,"walSegments":%s,"oldestWalAgeDays":%s,"dbDir":%s,"dbBytes":%s,"otherBytes":%s,' \
    "$(json_str "$wal_dir")" "$wal_bytes" "$segments" "${oldest_days:-null}" "$(json_str "$db_dir")" "$db_bytes" "$other_bytes"
  printf '"largestDirs":%s,"suggestedSection":%s,"reasons":%s,"inodesExhausted":%s,"recovered":%s,"warnings":%s}\n' \
    "$(largest_dirs_json "$largest")" "$(json_str "$section")" "$(json_array "${reasons[@]}")" "$inodes_exhausted" "$recovered" \
    "$(json_array ${WARNINGS[@]+"${WARNINGS[@]}"})"
}

main "$@"
