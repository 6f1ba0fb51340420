#!/usr/bin/env bash
# inode-cleanup.sh: runbook §4 Inode Exhaustion on the host, run by the <Prefix>-Host-InodeCleanup
# Command document: df -i, the directories holding the most entries, then deletion of *.tmp files
# and empty regular files inside the allowed directories only, and df -i again.
# The runbook's "consolidate small WAL segments" (tar + rm) is NOT done here: WAL segments are
# removed only by <Prefix>-ArchiveWal, after each one is verified in S3, and the WAL directory is
# never an allowed directory (an empty segment may be the one being written).
#
# Reads (the document's allowedPattern checks them first; this script checks them again):
#   SSM_MountPoint     the data mount (default /data); it must be a mount point
#   SSM_WalDir         the WAL directory; '' = <MountPoint>/wal (default '')
#   SSM_AllowedDirs    colon-separated absolute directories under MountPoint to clean;
#                      '' = <MountPoint>/db:<MountPoint>/tmp (default '')
#   SSM_MinAgeMinutes  never delete a file modified less than this many minutes ago (1-999999, default 60)
#   SSM_TopDirs        how many of the busiest directories to report (1-100, default 20)
#   SSM_DryRun         true|false: true lists and counts what would be deleted and deletes nothing
#
# Safety: every allowed directory must exist as itself (not a symlink, no symlink in its path),
# lie strictly under MountPoint on MountPoint's filesystem, and be neither the WAL directory, nor
# inside it, nor contain it; otherwise the script refuses (exit 2) before deleting anything. A
# missing allowed directory is skipped. Inside an allowed directory, the walk never follows a
# symlink (find -P) and never leaves the filesystem (-xdev); directories that are mount points
# (bind mounts of the same filesystem included) and any directory that is the WAL directory
# (same device and inode, e.g. reached through a bind mount) are excluded. A candidate is a
# regular file named *.tmp, or an empty regular file, last modified at least MinAgeMinutes ago,
# and not open or mapped by any process (/proc/*/fd and /proc/*/map_files, device and inode).
# Deletion is done by find itself (-delete: unlinkat relative to the directory it walks, so a
# directory swapped for a symlink during the run is not followed); the open-file list is read
# again just before it.
#
# Prints the human report (df -i, busiest directories) and progress on stderr and, as the last
# stdout line, one JSON object:
#   {"status":"cleaned"|"dry-run"|"nothing-to-do"|"refused","dryRun","mountPoint","walDir",
#    "allowedDirs":[{dir,status,deleted,bytes,skippedOpen,skippedRecent,skippedExcluded,excluded[]}],
#    "before":{inodesTotal,inodesUsed,inodesFree,inodesFreePercent},"after":{...},
#    "inodesFreed","filesDeleted","busiestDirs":[{dir,entries}],"wal":"...","problems":[...]}
# In a dry run "deleted" counts what would be deleted. Exit 0 done; 1 a deletion failed; 2 invalid
# input or a refused directory. Temp files: none (sort's, if any, go to a tmpfs).
set -euo pipefail

readonly RE_PART='/[A-Za-z0-9_-][A-Za-z0-9._-]*'
readonly RE_PATH="^(${RE_PART})+\$"
readonly RE_OPTIONAL_PATH="^(${RE_PART})*\$"
readonly RE_DIRS="^((${RE_PART})+(:(${RE_PART})+)*)?\$"
readonly RE_MINUTES='^[1-9][0-9]{0,5}$'
readonly RE_TOP='^([1-9][0-9]?|100)$'
readonly MAX_DIRS=16
readonly MAX_PATH=1024
readonly FIND_TIMEOUT_SECONDS=600

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='inode-cleanup'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh
# shellcheck source=lib/cleanup-input.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/cleanup-input.sh" # stemedb:inline lib/cleanup-input.sh

read_parameters() {
  param MOUNT_POINT MountPoint "$RE_PATH" /data
  param WAL_DIR WalDir "$RE_OPTIONAL_PATH" ''
  param ALLOWED AllowedDirs "$RE_DIRS" '' $((MAX_PATH * MAX_DIRS))
  param MIN_AGE MinAgeMinutes "$RE_MINUTES" 60
  param TOP_DIRS TopDirs "$RE_TOP" 20
  param DRY_RUN DryRun '^(true|false)$' false
  [[ -n $WAL_DIR ]] || WAL_DIR="$MOUNT_POINT/wal"
  [[ -n $ALLOWED ]] || ALLOWED="$MOUNT_POINT/db:$MOUNT_POINT/tmp"
  IFS=: read -r -a ALLOWED_DIRS <<<"$ALLOWED"
  ((${#ALLOWED_DIRS[@]} <= MAX_DIRS)) || refuse "AllowedDirs names more than $MAX_DIRS directories"
  local dir
  for dir in "$MOUNT_POINT" "$WAL_DIR" "${ALLOWED_DIRS[@]}"; do
    ((${#dir} <= MAX_PATH)) || refuse "path longer than $MAX_PATH characters: ${dir:0:80}..."
  done
}

# The mount point must be a real directory that is a mount point.
check_mount_point() {
  [[ -d $MOUNT_POINT && ! -L $MOUNT_POINT ]] || refuse "MountPoint $MOUNT_POINT is not a directory"
  [[ $(realpath -e -- "$MOUNT_POINT") == "$MOUNT_POINT" ]] || refuse "MountPoint $MOUNT_POINT resolves elsewhere (a symlink in its path)"
  [[ $(df --output=target -- "$MOUNT_POINT" | tail -n 1) == "$MOUNT_POINT" ]] || refuse "MountPoint $MOUNT_POINT is not a mount point"
  MOUNT_DEV=$(stat -c %d -- "$MOUNT_POINT")
}

# The WAL directory's identity (device:inode), when it exists.
check_wal_dir() {
  WAL_ID=''
  if [[ -e $WAL_DIR || -L $WAL_DIR ]]; then
    local real
    real=$(realpath -e -- "$WAL_DIR" 2>/dev/null) || refuse "cannot resolve WalDir $WAL_DIR"
    WAL_ID=$(stat -c %d:%i -- "$real")
    WAL_REAL=$real
  else
    WAL_REAL=$WAL_DIR
  fi
}

# True when path $1 is $2 or lies under it.
is_within() { [[ $1 == "$2" || $1 == "$2"/* ]]; }

# Checks every allowed directory; refuses the whole run on the first bad one.
check_allowed_dirs() {
  local dir
  DIR_STATES=()
  for dir in "${ALLOWED_DIRS[@]}"; do
    if [[ $dir == "$MOUNT_POINT" ]] || ! is_within "$dir" "$MOUNT_POINT"; then
      refuse "allowed directory $dir is not strictly under MountPoint $MOUNT_POINT"
    fi
    if is_within "$dir" "$WAL_DIR" || is_within "$WAL_DIR" "$dir" || is_within "$dir" "$WAL_REAL" || is_within "$WAL_REAL" "$dir"; then
      refuse "allowed directory $dir overlaps the WAL directory $WAL_DIR (WAL goes through ArchiveWal only)"
    fi
    if [[ -L $dir ]]; then refuse "allowed directory $dir is a symlink"; fi
    if [[ ! -e $dir ]]; then
      DIR_STATES+=(missing)
      continue
    fi
    [[ -d $dir ]] || refuse "allowed directory $dir is not a directory"
    [[ $(realpath -e -- "$dir") == "$dir" ]] || refuse "allowed directory $dir resolves elsewhere (a symlink in its path)"
    [[ $(stat -c %d -- "$dir") == "$MOUNT_DEV" ]] || refuse "allowed directory $dir is on another filesystem than $MOUNT_POINT"
    [[ -z $WAL_ID || $(stat -c %d:%i -- "$dir") != "$WAL_ID" ]] || refuse "allowed directory $dir is the WAL directory"
    DIR_STATES+=(ok)
  done
}

# Sets INODES_JSON ({inodesTotal, inodesUsed, inodesFree, inodesFreePercent} of the mount) and INODES_FREE.
read_inodes() {
  local itotal iused pct
  read -r itotal iused INODES_FREE < <(df --output=itotal,iused,iavail -- "$MOUNT_POINT" | tail -n 1)
  pct=$(awk -v f="$INODES_FREE" -v t="$itotal" 'BEGIN { if (t > 0) printf "%.2f", f * 100 / t; else printf "100" }')
  printf -v INODES_JSON '{"inodesTotal":%s,"inodesUsed":%s,"inodesFree":%s,"inodesFreePercent":%s}' \
    "$itotal" "$iused" "$INODES_FREE" "$pct"
}

# A tmpfs directory for sort (large inputs spill to $TMPDIR); none when there is no tmpfs.
use_tmpfs_for_sort() {
  local base
  for base in /dev/shm /run; do
    if [[ -d $base && -w $base && $(stat -f -c %T -- "$base") == tmpfs ]]; then
      export TMPDIR=$base
      return
    fi
  done
}

# The runbook's `find <mount> -xdev -printf '%h\n' | sort | uniq -c | sort -n | tail`, counted in
# awk (memory per directory, no temp files). Prints "<entries>\t<dir>", busiest first.
busiest_dirs() {
  timeout "$FIND_TIMEOUT_SECONDS" find -P "$MOUNT_POINT" -xdev -mindepth 1 -printf '%h\0' 2>/dev/null |
    tr '\n\0' '?\n' | awk '{ c[$0]++ } END { for (d in c) printf "%d\t%s\n", c[d], d }' |
    sort -t "$(printf '\t')" -k1,1nr -k2 | head -n "$TOP_DIRS" || true
}

busiest_json() {
  local first=1 count dir
  printf '['
  while IFS=$'\t' read -r count dir; do
    [[ -n $dir ]] || continue
    if ((first)); then first=0; else printf ','; fi
    printf '{"dir":%s,"entries":%s}' "$(json_str "$dir")" "$count"
  done <<<"$1"
  printf ']'
}

# Inode numbers (on the mount's filesystem) of files open or mapped by any process.
open_inodes() {
  find -L /proc/[0-9]*/fd /proc/[0-9]*/map_files -mindepth 1 -maxdepth 1 -printf '%D:%i\n' 2>/dev/null |
    awk -F: -v dev="$MOUNT_DEV" '$1 == dev { print $2 }' | sort -un || true
}

# Mount points strictly under directory $1 (from /proc/self/mountinfo, octal escapes decoded).
mounts_under() {
  local target
  while read -r _ _ _ _ target _; do
    target=$(printf '%b' "$target")
    [[ $target == "$1"/* ]] && printf '%s\n' "$target"
  done </proc/self/mountinfo
  return 0
}

# Directories under $1 that are the WAL directory (same device and inode), e.g. a bind mount.
wal_aliases_under() {
  [[ -n $WAL_ID && ${WAL_ID%%:*} == "$MOUNT_DEV" ]] || return 0
  find -P "$1" -xdev -mindepth 1 -type d -inum "${WAL_ID#*:}" -print 2>/dev/null || true
}

# A find -path pattern matching exactly $1 (glob characters escaped).
glob_escape() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\*/\\*}
  s=${s//\?/\\?}
  s=${s//\[/\\[}
  printf '%s' "$s"
}

# find arguments that exclude the excluded directories and the open inodes: fills FILTER.
build_filter() {
  local ex ino
  local -a inodes
  FILTER=()
  for ex in "${EXCLUDED[@]}"; do
    FILTER+=(! -path "$(glob_escape "$ex")/*")
  done
  mapfile -t inodes < <(open_inodes)
  for ino in "${inodes[@]}"; do
    [[ -n $ino ]] && FILTER+=(! -inum "$ino")
  done
  return 0
}

# Cleans one allowed directory; sets D_JSON and adds to the totals.
clean_dir() {
  local dir=$1 state=$2 mtime size path candidates=0 bytes=0 skipped_open=0 skipped_recent=0 skipped_excluded=0
  local deleted=0 status cutoff ex excluded_hit
  local -a listing=()
  EXCLUDED=()
  if [[ $state == missing ]]; then
    log "$dir does not exist, skipped"
    D_JSON=$(printf '{"dir":%s,"status":"skipped: directory does not exist","deleted":0,"bytes":0}' "$(json_str "$dir")")
    return 0
  fi
  mapfile -t EXCLUDED < <({ mounts_under "$dir"; wal_aliases_under "$dir"; } | sort -u)
  ((${#EXCLUDED[@]} == 0)) || log "$dir: excluded (mount points, WAL directory): ${EXCLUDED[*]}"
  local -A open=()
  while IFS= read -r ex; do [[ -n $ex ]] && open[$ex]=1; done < <(open_inodes)
  cutoff=$(($(date +%s) - MIN_AGE * 60))
  mapfile -d '' -t listing < <(
    timeout "$FIND_TIMEOUT_SECONDS" find -P "$dir" -xdev -type f \( -name '*.tmp' -o -empty \) -printf '%Ts/%i/%s/%p\0'
  )
  local entry inode
  for entry in "${listing[@]}"; do
    mtime=${entry%%/*} && entry=${entry#*/}
    inode=${entry%%/*} && entry=${entry#*/}
    size=${entry%%/*} && path=${entry#*/}
    excluded_hit=0
    for ex in "${EXCLUDED[@]}"; do
      if is_within "$path" "$ex"; then excluded_hit=1 && break; fi
    done
    if ((excluded_hit)); then
      skipped_excluded=$((skipped_excluded + 1))
    elif [[ -n ${open[$inode]:-} ]]; then
      skipped_open=$((skipped_open + 1))
      log "keep $path: open by a process"
    elif ((mtime > cutoff)); then
      skipped_recent=$((skipped_recent + 1))
    else
      candidates=$((candidates + 1))
      bytes=$((bytes + size))
      [[ $DRY_RUN == true ]] && log "would delete $path"
    fi
  done
  if [[ $DRY_RUN == true ]]; then
    deleted=$candidates
    status=dry-run
  elif ((candidates == 0)); then
    status=nothing-to-do
  else
    build_filter
    # The same selection, done by find itself: -delete unlinks relative to the directory walked.
    local rc=0
    deleted=$(timeout "$FIND_TIMEOUT_SECONDS" find -P "$dir" -xdev -type f \( -name '*.tmp' -o -empty \) \
      ! -newermt "@$cutoff" "${FILTER[@]}" -print0 -delete | tr -cd '\0' | wc -c) || rc=$?
    status=cleaned
    if ((rc != 0)); then
      status="failed: find -delete exited $rc"
      PROBLEMS+=("$dir: find -delete exited $rc")
    fi
    if ((deleted < candidates)); then
      log "$dir: deleted $deleted of $candidates candidate(s) (some changed or became open meanwhile)"
    fi
    log "$dir: deleted $deleted file(s)"
  fi
  FILES_DELETED=$((FILES_DELETED + deleted))
  D_JSON=$(printf '{"dir":%s,"status":%s,"deleted":%s,"bytes":%s,"skippedOpen":%s,"skippedRecent":%s,"skippedExcluded":%s,"excluded":%s}' \
    "$(json_str "$dir")" "$(json_str "$status")" "$deleted" "$bytes" "$skipped_open" "$skipped_recent" \
    "$skipped_excluded" "$(json_array "${EXCLUDED[@]}")")
}

main() {
  read_parameters
  check_mount_point
  check_wal_dir
  check_allowed_dirs
  use_tmpfs_for_sort
  [[ $DRY_RUN == true ]] && log 'dry run: nothing will be deleted'
  local before after inodes_before busiest i dirs_json='' status
  df -i -- "$MOUNT_POINT" >&2
  read_inodes
  before=$INODES_JSON
  inodes_before=$INODES_FREE
  busiest=$(busiest_dirs)
  log "busiest directories (entries, directory):"
  printf '%s\n' "$busiest" >&2
  FILES_DELETED=0
  for i in "${!ALLOWED_DIRS[@]}"; do
    clean_dir "${ALLOWED_DIRS[$i]}" "${DIR_STATES[$i]}"
    dirs_json+=${dirs_json:+,}$D_JSON
  done
  sync -f -- "$MOUNT_POINT" 2>/dev/null || true
  df -i -- "$MOUNT_POINT" >&2
  read_inodes
  after=$INODES_JSON
  if [[ $DRY_RUN == true ]]; then status=dry-run; elif ((FILES_DELETED > 0)); then status=cleaned; else status=nothing-to-do; fi
  printf '{"status":%s,"dryRun":%s,"mountPoint":%s,"walDir":%s,"allowedDirs":[%s],"before":%s,"after":%s,"inodesFreed":%s,"filesDeleted":%s,"busiestDirs":%s,' \
    "$(json_str "$status")" "$DRY_RUN" "$(json_str "$MOUNT_POINT")" "$(json_str "$WAL_DIR")" "$dirs_json" \
    "$before" "$after" $((INODES_FREE - inodes_before)) "$FILES_DELETED" "$(busiest_json "$busiest")"
  printf '"wal":"not touched here: small WAL segments are archived and deleted only by the ArchiveWal automation, after S3 verification","problems":%s}\n' \
    "$(json_array "${PROBLEMS[@]}")"
  exit_on_problems
}

main "$@"
