#!/usr/bin/env bash
# migrate-data-volume.sh: runbook §5B on one StemeDB host: move the data mount to a new, larger
# disk (a new EBS volume), with rollback. Every phase can be run again: each one looks at the
# state the host is in and does only what is still missing.
#
# Reads (the Command document passes them as environment variables):
#   SSM_Action             migrate (default) | check-unused (reports whether the disk named by
#                          VolumeId/Device is mounted or held; changes nothing)
#   SSM_MountPoint         the data mount, e.g. /data (absolute path, no . or .. segment)
#   SSM_VolumeId           the new EBS volume (vol-...): its disk is found by NVMe serial
#                          (vol0123... without the dash), waiting up to DeviceWaitSeconds
#   SSM_Device             or the new disk's device path (/dev/nvme2n1, /dev/xvdg, /dev/loop7);
#                          with both, the disk must report that volume's serial
#   SSM_CurrentVolumeId    optional: the volume MountPoint is on now; its disk's serial must match
#   SSM_Filesystem         xfs | ext4 | '' (default: the current filesystem's type)
#   SSM_InodeRatio         ext4 only: bytes per inode (mke2fs -i), 1024-67108864; '' = mke2fs default
#   SSM_StagingDir         where the new filesystem is mounted during the copy (default
#                          /mnt/stemedb-migrate); not inside MountPoint
#   SSM_FstabFile          the fstab to switch (default /etc/fstab)
#   SSM_ServiceName        systemd unit of the database (default stemedb-api)
#   SSM_HealthUrl          http://localhost|127.0.0.1[:port]/path answering 2xx when healthy
#   SSM_HealthTimeoutSeconds  how long to wait for health after the start, 1-900 (default 120)
#   SSM_PreSyncPasses      copies made while the service runs, 0-3 (default 1)
#   SSM_DeviceWaitSeconds  how long to wait for the new disk to appear, 0-600 (default 120)
#   SSM_DryRun             true: every check, the plan and the fstab diff; nothing changed
#
# Phases (each skipped when the host already shows it done):
#  1. identify: the current filesystem (findmnt MountPoint: device, type, UUID, options) and the
#     new disk (by serial, or Device). The new disk must be a whole disk, not the current one,
#     not mounted, not held (holders, partitions), not swap. If MountPoint is already on the new
#     disk and fstab names it, the migration is done: status already-migrated (the service is
#     started if it is not running, nothing else is touched).
#  2. the new disk must be blank (blkid -p and wipefs -n find no signature: no partition table,
#     no filesystem, no RAID/LVM member), or hold exactly the filesystem an earlier run of this
#     same migration made (its UUID is derived from the current filesystem's UUID and the new
#     disk's identity, so no other disk can carry it): then the run resumes on it. Anything else
#     is refused (exit 3) and the disk is never written, not even mounted.
#  3. mkfs (blank disk only): mkfs.xfs -m uuid=<derived> | mkfs.ext4 -U <derived> [-i ratio];
#     mkfs.xfs runs without -f and mke2fs without -F, so they refuse an existing signature too.
#  4. mount it at StagingDir; check space (new available >= current used + 1%) and, for ext4,
#     inodes (new free inodes >= current used inodes): refused otherwise, before any stop.
#  5. the fstab backup: <FstabFile>.bak-<UTC stamp> created exclusively (a copy in a private
#     0700 directory next to fstab, then ln -T, which never follows or replaces a name that
#     exists); done before the stop, so a full root disk is found while the service still runs.
#  6. PreSyncPasses x rsync while the service runs (vanished files tolerated), then sync, so the
#     write-back happens before the downtime.
#  --- from here on, every failure rolls back ---
#  7. systemctl stop; no process may still have a file open on the current filesystem.
#  8. final rsync -aHAX --numeric-ids --sparse --delete -x (lost+found excluded on both sides),
#     then sync.
#  9. verify: the new filesystem is unmounted and mounted again (so reads come from the disk, not
#     the page cache), then (a) a manifest of both trees (every path's type, mode, owner, size and
#     mtime of files and links, link count of files, link targets) is compared by SHA-256, with
#     file count and total bytes of distinct files reported for both sides, and (b) an
#     rsync --checksum --dry-run --itemize-changes -aHAX pass must list no difference: the
#     checksum of EVERY file is compared on both sides (no sampling), and xattrs, ACLs and hard
#     links with it.
# 10. fstab: the entry for MountPoint is replaced by UUID=<new> <mount> <type> <opts with nofail>,
#     the old entry kept on the line above, commented, under a "# stemedb migrate-data-volume"
#     marker line; written to a file in the private directory and renamed over fstab (atomic).
# 11. unmount StagingDir and the current filesystem, mount MountPoint from the new fstab
#     (mount --fstab FstabFile MountPoint, as a boot would), check it is the new filesystem;
#     systemctl daemon-reload when FstabFile is /etc/fstab (systemd reads only that one).
# 12. systemctl start, wait for HealthUrl.
# Rollback (any failure after 7): stop the service if it was started on the new disk, unmount
# the new filesystem, restore fstab from this run's own copy, mount the old filesystem at
# MountPoint again, start the service if it was running before, wait for health; exit 1 naming
# the cause and the rollback's outcome. The new disk is left as it is, unmounted, for
# inspection; the current (old) filesystem is only ever read, never written.
#
# Prints progress on stderr; the last stdout line is one JSON object:
#   {"status": "migrated"|"already-migrated"|"dry-run"|"rolled-back"|"refused"|"failed"|
#              "unused"|"in-use", "reason", "dryRun", "mountPoint", "old":{device,disk,serial,
#    fstype,uuid,usedBytes}, "new":{device,serial,fstype,uuid,state,sizeBytes}, "fstabFile",
#    "fstabBackup", "fstabChanged", "serviceWasActive", "serviceStopped", "healthy",
#    "rolledBack", "rollbackHealthy", "verify":{method,files,dirs,symlinks,other,bytes,
#    manifestSha256,identical,seconds,manifestSeconds,checksumSeconds}, "timings":{preSyncSeconds,stopSeconds,finalSyncSeconds,
#    verifySeconds,switchSeconds,startSeconds,downtimeSeconds}, "actions":[...], "warnings":[...]}
# Exit: 0 migrated / already migrated / dry run / unused; 1 failed (rolled back or not, the reason
#   says); 2 invalid parameters; 3 refused, nothing changed (the service was never stopped).

set -euo pipefail
export LC_ALL=C

readonly DEVICE_RE='^(/dev/[A-Za-z0-9_-][A-Za-z0-9_:-]*(/[A-Za-z0-9_-][A-Za-z0-9._:-]*){0,3})?$'
readonly VOLUME_RE='^(vol-[0-9a-f]{8}([0-9a-f]{9})?)?$'
readonly MARKER='# stemedb migrate-data-volume'

ACTION='' MOUNT='' NEW_VOLUME='' DEVICE_PARAM='' CUR_VOLUME='' FS_PARAM='' INODE_RATIO=''
STAGING='' FSTAB='' SERVICE='' HEALTH_URL='' HEALTH_TIMEOUT='' PRE_PASSES='' DEVICE_WAIT=''
DRY_RUN=''

OLD_DEV='' OLD_DISK='' OLD_SERIAL='' OLD_FSTYPE='' OLD_UUID='' OLD_OPTS='' OLD_USED=0
OLD_INODES_USED=0 OLD_FSDEV_NUM=''
NEW_DEV='' NEW_SERIAL='' NEW_FSTYPE='' NEW_UUID='' NEW_STATE='' NEW_SIZE=0
FSTAB_BACKUP='' FSTAB_CHANGED=false PRIVATE_DIR='' ORIGINAL_TAB='' SWITCHED_TAB=''
SERVICE_WAS_ACTIVE=false SERVICE_STOPPED=false SERVICE_STARTED=false HEALTHY=false
ROLLED_BACK=false ROLLBACK_HEALTHY='' IN_CRITICAL=false RESULT_EMITTED=false
OLD_UNMOUNTED=false
V_METHOD='' V_FILES=0 V_DIRS=0 V_LINKS=0 V_OTHER=0 V_BYTES=0 V_SHA='' V_IDENTICAL=false V_SECONDS=0 V_MANIFEST_SECONDS=0 V_CHECKSUM_SECONDS=0
T_PRE=0 T_STOP=0 T_FINAL=0 T_VERIFY=0 T_SWITCH=0 T_START=0 T_DOWN='' STOP_AT=''
ACTIONS=() WARNINGS=()

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='migrate-data-volume'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh
# shellcheck source=lib/service-health.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/service-health.sh" # stemedb:inline lib/service-health.sh
# shellcheck source=lib/file-backup.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/file-backup.sh" # stemedb:inline lib/file-backup.sh

# Seconds (3 decimals) since the EPOCHREALTIME value $1.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

emit_result() {
  local status=$1 reason=$2
  RESULT_EMITTED=true
  printf '{"status":%s,"reason":%s,"dryRun":%s,"mountPoint":%s,' \
    "$(json_str "$status")" "$(json_or_null "$reason")" "${DRY_RUN:-false}" "$(json_str "$MOUNT")"
  printf '"old":{"device":%s,"disk":%s,"serial":%s,"fstype":%s,"uuid":%s,"usedBytes":%s},' \
    "$(json_or_null "$OLD_DEV")" "$(json_or_null "$OLD_DISK")" "$(json_or_null "$OLD_SERIAL")" \
    "$(json_or_null "$OLD_FSTYPE")" "$(json_or_null "$OLD_UUID")" "$OLD_USED"
  printf '"new":{"device":%s,"serial":%s,"volumeId":%s,"fstype":%s,"uuid":%s,"state":%s,"sizeBytes":%s},' \
    "$(json_or_null "$NEW_DEV")" "$(json_or_null "$NEW_SERIAL")" "$(json_or_null "$NEW_VOLUME")" \
    "$(json_or_null "$NEW_FSTYPE")" "$(json_or_null "$NEW_UUID")" "$(json_or_null "$NEW_STATE")" "$NEW_SIZE"
  printf '"fstabFile":%s,"fstabBackup":%s,"fstabChanged":%s,"serviceWasActive":%s,"serviceStopped":%s,' \
    "$(json_str "$FSTAB")" "$(json_or_null "$FSTAB_BACKUP")" "$FSTAB_CHANGED" "$SERVICE_WAS_ACTIVE" \
    "$SERVICE_STOPPED"
  printf '"healthy":%s,"rolledBack":%s,"rollbackHealthy":%s,' \
    "$HEALTHY" "$ROLLED_BACK" "${ROLLBACK_HEALTHY:-null}"
  printf '"verify":{"method":%s,"files":%s,"dirs":%s,"symlinks":%s,"other":%s,"bytes":%s,"manifestSha256":%s,"identical":%s,"seconds":%s,"manifestSeconds":%s,"checksumSeconds":%s},' \
    "$(json_or_null "$V_METHOD")" "$V_FILES" "$V_DIRS" "$V_LINKS" "$V_OTHER" "$V_BYTES" \
    "$(json_or_null "$V_SHA")" "$V_IDENTICAL" "$V_SECONDS" "$V_MANIFEST_SECONDS" "$V_CHECKSUM_SECONDS"
  printf '"timings":{"preSyncSeconds":%s,"stopSeconds":%s,"finalSyncSeconds":%s,"verifySeconds":%s,"switchSeconds":%s,"startSeconds":%s,"downtimeSeconds":%s},' \
    "$T_PRE" "$T_STOP" "$T_FINAL" "$T_VERIFY" "$T_SWITCH" "$T_START" "${T_DOWN:-null}"
  printf '"actions":%s,"warnings":%s}\n' \
    "$(json_array ${ACTIONS[@]+"${ACTIONS[@]}"})" "$(json_array ${WARNINGS[@]+"${WARNINGS[@]}"})"
}

# Ends the run with the JSON result on stdout and the reason on stderr.
finish() {
  local code=$1 status=$2 reason=$3
  printf 'migrate-data-volume: %s\n' "$reason" >&2
  emit_result "$status" "$reason"
  cleanup_private
  exit "$code"
}

cleanup_private() {
  if [[ -n $PRIVATE_DIR ]]; then rm -rf -- "$PRIVATE_DIR"; fi
  PRIVATE_DIR=''
}

bad_parameter() { finish 2 refused "invalid parameter: $1 (nothing was changed)"; }
refuse() { finish 3 refused "$1 (nothing was changed; the service was not stopped)"; }

# Before the stop a failure only has to undo the staging mount; after it, fail rolls back.
fail() {
  if [[ $IN_CRITICAL == true ]]; then roll_back "$1"; fi
  unmount_staging_quietly
  finish 1 failed "$1; the service was not stopped and $MOUNT is unchanged"
}

on_exit() {
  local rc=$?
  trap - EXIT
  if ((rc != 0)) && [[ $RESULT_EMITTED == false ]]; then
    if [[ $IN_CRITICAL == true ]]; then roll_back "unexpected failure (exit $rc) after: ${ACTIONS[*]:-nothing}"; fi
    unmount_staging_quietly
    printf 'migrate-data-volume: unexpected failure (exit %s) after: %s\n' "$rc" "${ACTIONS[*]:-nothing}" >&2
    emit_result failed "unexpected failure (exit $rc) after: ${ACTIONS[*]:-nothing}"
  fi
  cleanup_private
  exit "$rc"
}

on_signal() { log "interrupted by signal"; exit 143; }

# --- parameters ------------------------------------------------------------------------------

in_range() { [[ $1 =~ ^(0|[1-9][0-9]{0,8})$ ]] && ((10#$1 >= $2 && 10#$1 <= $3)); }

read_parameters() {
  ACTION=${SSM_Action:-migrate}
  MOUNT=${SSM_MountPoint:-}
  NEW_VOLUME=${SSM_VolumeId:-}
  DEVICE_PARAM=${SSM_Device:-}
  CUR_VOLUME=${SSM_CurrentVolumeId:-}
  FS_PARAM=${SSM_Filesystem:-}
  INODE_RATIO=${SSM_InodeRatio:-}
  STAGING=${SSM_StagingDir:-/mnt/stemedb-migrate}
  FSTAB=${SSM_FstabFile:-/etc/fstab}
  SERVICE=${SSM_ServiceName:-stemedb-api}
  HEALTH_URL=${SSM_HealthUrl:-http://localhost:18180/v1/health}
  HEALTH_TIMEOUT=${SSM_HealthTimeoutSeconds:-120}
  PRE_PASSES=${SSM_PreSyncPasses:-1}
  DEVICE_WAIT=${SSM_DeviceWaitSeconds:-120}
  DRY_RUN=${SSM_DryRun:-false}
  [[ $DRY_RUN == true || $DRY_RUN == false ]] || { DRY_RUN=false; bad_parameter "DryRun must be true or false"; }
  [[ $ACTION == migrate || $ACTION == check-unused ]] || bad_parameter "Action must be migrate or check-unused"
  [[ $MOUNT =~ $DIR_RE ]] || bad_parameter "MountPoint must be an absolute path of letters, digits, . _ - with no . or .. segment, not /"
  [[ $NEW_VOLUME =~ $VOLUME_RE ]] || bad_parameter "VolumeId must be vol- and 8 or 17 hex digits, or empty"
  [[ $DEVICE_PARAM =~ $DEVICE_RE ]] || bad_parameter "Device must be a path under /dev of plain names, or empty"
  [[ $CUR_VOLUME =~ $VOLUME_RE ]] || bad_parameter "CurrentVolumeId must be vol- and 8 or 17 hex digits, or empty"
  [[ -z $FS_PARAM || $FS_PARAM == xfs || $FS_PARAM == ext4 ]] || bad_parameter "Filesystem must be xfs, ext4 or empty"
  if [[ -n $INODE_RATIO ]]; then
    in_range "$INODE_RATIO" 1024 67108864 || bad_parameter "InodeRatio must be a whole number of bytes per inode from 1024 to 67108864"
  fi
  [[ $STAGING =~ $DIR_RE ]] || bad_parameter "StagingDir must be an absolute path like MountPoint"
  [[ $FSTAB =~ $PLAIN_PATH_RE ]] || bad_parameter "FstabFile must be an absolute path of plain names"
  # shellcheck disable=SC2153 # SERVICE_RE is lib/common.sh's (not a misspelt DEVICE_RE)
  [[ $SERVICE =~ $SERVICE_RE ]] || bad_parameter "ServiceName is not a systemd unit name"
  [[ $HEALTH_URL =~ $HEALTH_URL_RE ]] || bad_parameter "HealthUrl must be http://localhost or http://127.0.0.1 with a path"
  in_range "$HEALTH_TIMEOUT" 1 900 || bad_parameter "HealthTimeoutSeconds must be from 1 to 900"
  in_range "$PRE_PASSES" 0 3 || bad_parameter "PreSyncPasses must be from 0 to 3"
  in_range "$DEVICE_WAIT" 0 600 || bad_parameter "DeviceWaitSeconds must be from 0 to 600"
  if [[ $STAGING == "$MOUNT" || $STAGING == "$MOUNT"/* || $MOUNT == "$STAGING"/* ]]; then
    bad_parameter "StagingDir $STAGING must be outside MountPoint $MOUNT and not contain it"
  fi
  if [[ -z $NEW_VOLUME && -z $DEVICE_PARAM && ! ($ACTION == migrate && $DRY_RUN == true) ]]; then
    bad_parameter "give VolumeId or Device (the new disk); only a migrate dry run may omit both"
  fi
}

check_tools() {
  local t tools=(awk blkid wipefs lsblk findmnt mount umount rsync systemctl curl sha256sum sort find stat df cmp cp ln mv mktemp sync)
  [[ $ACTION == check-unused ]] && tools=(lsblk findmnt blkid)
  for t in "${tools[@]}"; do
    command -v "$t" >/dev/null 2>&1 || refuse "required command '$t' not found on PATH"
  done
}

# One run at a time on this host (an operator and an automation may start it together).
take_lock() {
  local dir
  command -v flock >/dev/null 2>&1 || { WARNINGS+=("flock not installed: no run lock"); return 0; }
  for dir in /run/lock /run /tmp; do
    if [[ -d $dir && -w $dir ]]; then
      exec 8>>"$dir/stemedb-migrate-data-volume.lock"
      flock -w 30 8 || refuse "another migrate-data-volume run holds $dir/stemedb-migrate-data-volume.lock"
      return 0
    fi
  done
}

# --- disks -----------------------------------------------------------------------------------

disk_serial() {
  local name serial=''
  name=$(basename -- "$1")
  if [[ -r /sys/block/$name/device/serial ]]; then
    serial=$(<"/sys/block/$name/device/serial")
  else
    serial=$(lsblk -dno SERIAL -- "$1" 2>/dev/null || true)
  fi
  printf '%s' "$serial" | tr -d '[:space:]'
}

# The whole disk a device (partition or disk) belongs to.
disk_of() {
  local name
  name=$(basename -- "$1")
  if [[ -r /sys/class/block/$name/partition ]]; then
    printf '/dev/%s' "$(basename -- "$(dirname -- "$(readlink -f "/sys/class/block/$name")")")"
  else
    printf '%s' "$1"
  fi
}

# Prints the device whose serial is $1 (vol0123...), or nothing.
disk_by_serial() {
  local want=$1 dev
  while read -r dev; do
    [[ -n $dev ]] || continue
    if [[ $(disk_serial "/dev/$dev") == "$want" ]]; then
      printf '/dev/%s' "$dev"
      return 0
    fi
  done < <(lsblk -dno NAME 2>/dev/null)
  return 0
}

find_current() {
  local source fsroot
  findmnt -n --mountpoint "$MOUNT" >/dev/null 2>&1 || refuse "$MOUNT is not a mount point"
  source=$(findmnt -n -r -o SOURCE --mountpoint "$MOUNT" | tail -n 1)
  OLD_FSTYPE=$(findmnt -n -r -o FSTYPE --mountpoint "$MOUNT" | tail -n 1)
  OLD_OPTS=$(findmnt -n -r -o OPTIONS --mountpoint "$MOUNT" | tail -n 1)
  fsroot=$(findmnt -n -r -o FSROOT --mountpoint "$MOUNT" | tail -n 1)
  [[ $fsroot == / ]] || refuse "$MOUNT is a bind mount of $fsroot on $source; migrate the filesystem at its own mount point"
  [[ -b $source ]] || refuse "$MOUNT is $OLD_FSTYPE on $source, not a filesystem on a block device"
  case "$OLD_FSTYPE" in xfs | ext4) ;; *) refuse "$MOUNT is $OLD_FSTYPE; only xfs and ext4 are supported" ;; esac
  OLD_DEV=$(readlink -f -- "$source")
  OLD_DISK=$(disk_of "$OLD_DEV")
  OLD_SERIAL=$(disk_serial "$OLD_DISK")
  OLD_UUID=$(blkid -p -o value -s UUID -- "$OLD_DEV" 2>/dev/null || true)
  [[ -n $OLD_UUID ]] || refuse "cannot read the UUID of $OLD_DEV"
  OLD_FSDEV_NUM=$(stat -c %d -- "$MOUNT")
  OLD_USED=$(df -B1 --output=used -- "$MOUNT" | tail -n 1 | tr -d ' ')
  OLD_INODES_USED=$(df --output=iused -- "$MOUNT" | tail -n 1 | tr -d ' ')
  [[ $OLD_INODES_USED =~ ^[0-9]+$ ]] || OLD_INODES_USED=0
  if [[ -n $CUR_VOLUME ]]; then
    [[ -n $OLD_SERIAL ]] || refuse "CurrentVolumeId $CUR_VOLUME given but $OLD_DISK reports no serial"
    [[ $OLD_SERIAL == "${CUR_VOLUME//-/}" ]] || refuse "CurrentVolumeId mismatch: $MOUNT is on $OLD_DISK with serial $OLD_SERIAL, expected ${CUR_VOLUME//-/}"
  fi
  # Mounts below MountPoint would be hidden by the switch (and rsync -x does not copy them).
  local nested
  nested=$(findmnt -n -r -o TARGET -R --mountpoint "$MOUNT" | awk 'NR == 2')
  [[ -z $nested ]] || refuse "$nested is mounted inside $MOUNT; unmount or move it first"
  log "current: $MOUNT is $OLD_FSTYPE UUID=$OLD_UUID on $OLD_DEV (disk $OLD_DISK${OLD_SERIAL:+, serial $OLD_SERIAL}), $OLD_USED bytes used"
}

# Sets NEW_DEV from Device or from the volume's serial (waiting for it to appear).
find_new_disk() {
  local want=${NEW_VOLUME//-/} deadline=$((SECONDS + DEVICE_WAIT)) dev=''
  if [[ -n $DEVICE_PARAM ]]; then
    dev=$(readlink -f -- "$DEVICE_PARAM" 2>/dev/null || true)
    while [[ ! -b $dev ]] && ((SECONDS < deadline)); do
      sleep 1
      dev=$(readlink -f -- "$DEVICE_PARAM" 2>/dev/null || true)
    done
    [[ -b $dev ]] || refuse "Device $DEVICE_PARAM is not a block device"
  else
    dev=$(disk_by_serial "$want")
    while [[ -z $dev ]] && ((SECONDS < deadline)); do
      sleep 1
      dev=$(disk_by_serial "$want")
    done
    [[ -n $dev ]] || refuse "no disk with serial $want (volume $NEW_VOLUME) appeared within $DEVICE_WAIT s; is it attached to this instance?"
  fi
  NEW_DEV=$dev
  NEW_SERIAL=$(disk_serial "$NEW_DEV")
  if [[ -n $NEW_VOLUME ]]; then
    [[ -n $NEW_SERIAL ]] || refuse "VolumeId $NEW_VOLUME given but $NEW_DEV reports no serial, so it cannot be confirmed as that volume"
    [[ $NEW_SERIAL == "$want" ]] || refuse "VolumeId mismatch: $NEW_DEV has serial $NEW_SERIAL, expected $want"
  fi
  NEW_SIZE=$(blockdev --getsize64 "$NEW_DEV" 2>/dev/null || lsblk -bdno SIZE -- "$NEW_DEV")
}

# Prints why the disk $1 is in use (mounted, partitions, holders, swap), or nothing.
disk_use() {
  local dev=$1 name mounts parts holders
  name=$(basename -- "$dev")
  mounts=$(findmnt -n -r -o TARGET -S "$dev" 2>/dev/null | tr '\n' ' ')
  [[ -z $mounts ]] || { printf 'mounted at %s' "$mounts"; return 0; }
  parts=$(lsblk -nro NAME -- "$dev" 2>/dev/null | tail -n +2 | tr '\n' ' ')
  [[ -z $parts ]] || { printf 'has partitions or stacked devices: %s' "$parts"; return 0; }
  holders=$(find "/sys/class/block/$name/holders" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null || true)
  [[ -z $holders ]] || { printf 'held by %s' "$holders"; return 0; }
  if [[ -r /proc/swaps ]] && awk -v d="$dev" 'NR > 1 && $1 == d { f = 1 } END { exit !f }' /proc/swaps; then
    printf 'in use as swap'
  fi
  return 0
}

check_new_disk_usable() {
  local type use
  [[ $NEW_DEV != "$OLD_DISK" && $NEW_DEV != "$OLD_DEV" ]] || refuse "the new disk $NEW_DEV is the disk $MOUNT is on now"
  type=$(lsblk -dno TYPE -- "$NEW_DEV" 2>/dev/null | awk 'NR == 1')
  [[ $type == disk || $type == loop ]] || refuse "$NEW_DEV is a $type, not a whole disk"
  use=$(disk_use "$NEW_DEV")
  [[ -z $use ]] || refuse "the new disk $NEW_DEV $use"
}

# The UUID this migration gives the new filesystem: derived from the current filesystem and the
# new disk, so a later run recognises its own filesystem and no other disk can carry it.
derive_uuid() {
  local id=${NEW_VOLUME:-${NEW_SERIAL:-$NEW_DEV}} h
  h=$(printf 'stemedb-migrate-data-volume:%s:%s' "$OLD_UUID" "$id" | sha256sum | cut -c1-32)
  printf '%s-%s-4%s-%x%s-%s' "${h:0:8}" "${h:8:4}" "${h:13:3}" $(((16#${h:16:1} & 3) | 8)) "${h:17:3}" "${h:20:12}"
}

# Sets NEW_STATE: blank | resume; refuses anything else, touching nothing.
classify_new_disk() {
  local sigs count pttype fstype uuid
  NEW_UUID=$(derive_uuid)
  sigs=$(wipefs --no-act --noheadings --output TYPE,UUID -- "$NEW_DEV" 2>/dev/null) ||
    refuse "wipefs -n cannot read $NEW_DEV"
  pttype=$(blkid -p -o value -s PTTYPE -- "$NEW_DEV" 2>/dev/null || true)
  fstype=$(blkid -p -o value -s TYPE -- "$NEW_DEV" 2>/dev/null || true)
  uuid=$(blkid -p -o value -s UUID -- "$NEW_DEV" 2>/dev/null || true)
  count=$(grep -c . <<<"$sigs" || true)
  if ((count == 0)) && [[ -z $pttype && -z $fstype ]]; then
    NEW_STATE=blank
    log "new disk $NEW_DEV ($NEW_SIZE bytes) is blank"
    return 0
  fi
  if [[ -z $pttype && $fstype == "$NEW_FSTYPE" && $uuid == "$NEW_UUID" ]] && ((count == 1)); then
    NEW_STATE=resume
    log "new disk $NEW_DEV already holds the $NEW_FSTYPE filesystem an earlier run of this migration made (UUID=$NEW_UUID): resuming"
    return 0
  fi
  local what
  what=$(tr '\n' ' ' <<<"$sigs")
  refuse "the new disk $NEW_DEV is not blank (${pttype:+partition table $pttype; }${fstype:+filesystem $fstype UUID=$uuid; }signatures: ${what:-unknown}); it is not touched. Use a new, empty volume"
}

# --- fstab -------------------------------------------------------------------------------------

# The fstab edit, in awk. mode=switch: replaces the one active entry for `mount` by the marker,
# the entry commented out, and the new entry (or appends marker and new entry when there is
# none). mode=unswitch: undoes exactly that for this migration's UUID (identity otherwise).
# mode=check: prints the active entry. Every other line is kept byte for byte. Exit 3 (with the
# reason on stdout) when the file cannot be edited safely.
fstab_program() {
  cat <<'AWK'
function unesc(s) { gsub(/\\040/, " ", s); gsub(/\\011/, "\t", s); return s }
function active(line,   f) { return line !~ /^[ \t]*(#|$)/ }
{ lines[NR] = $0 }
END {
  mount = ENVIRON["FT_MOUNT"]; mode = ENVIRON["FT_MODE"]; newuuid = ENVIRON["FT_NEW_UUID"]
  n = 0; found = 0
  for (i = 1; i <= NR; i++) {
    if (!active(lines[i])) continue
    split(lines[i], f, /[ \t]+/)
    first = (f[1] == "") ? 2 : 1
    if (unesc(f[first + 1]) == mount) { found++; at = i }
  }
  if (found > 1) { print "fstab has " found " active entries for " mount; exit 3 }
  if (mode == "check") { if (found) print lines[at]; exit 0 }
  if (mode == "unswitch") {
    if (!found) { for (i = 1; i <= NR; i++) print lines[i]; exit 0 }
    split(lines[at], f, /[ \t]+/); first = (f[1] == "") ? 2 : 1
    ours = (f[first] == "UUID=" newuuid)
    m = ENVIRON["FT_MARKER"] " "
    if (ours && at > 2 && index(lines[at - 2], m) == 1 && index(lines[at - 2], " UUID=" newuuid " ") && lines[at - 1] ~ /^#/) {
      for (i = 1; i <= NR; i++) {
        if (i == at - 2 || i == at) continue
        if (i == at - 1) print substr(lines[i], 2); else print lines[i]
      }
      exit 0
    }
    if (ours && at > 1 && index(lines[at - 1], m) == 1 && index(lines[at - 1], " UUID=" newuuid " ")) {
      for (i = 1; i <= NR; i++) if (i != at - 1 && i != at) print lines[i]
      exit 0
    }
    for (i = 1; i <= NR; i++) print lines[i]
    exit 0
  }
  # switch
  for (i = 1; i <= NR; i++) {
    if (found && i == at) {
      print ENVIRON["FT_MARKER_LINE"]
      print "#" lines[i]
      print ENVIRON["FT_NEW_LINE"]
    } else print lines[i]
  }
  if (!found) { print ENVIRON["FT_MARKER_LINE"]; print ENVIRON["FT_NEW_LINE"] }
}
AWK
}

# fstab_edit MODE INPUT > OUTPUT (environment FT_* set by the caller).
fstab_edit() {
  FT_MODE=$1 FT_MOUNT=$MOUNT FT_MARKER=$MARKER FT_NEW_UUID=$NEW_UUID awk "$(fstab_program)" "$2"
}

# The entry's options with nofail, for the same filesystem type; defaults,nofail otherwise.
new_entry_line() {
  local old=$1 opts='defaults,nofail' dump=0 pass=0 f=()
  [[ $NEW_FSTYPE == ext4 ]] && pass=2
  if [[ -n $old ]]; then
    read -r -a f <<<"$old"
    if [[ ${f[2]:-} == "$NEW_FSTYPE" && -n ${f[3]:-} ]]; then
      opts=${f[3]}
      [[ ,$opts, == *,nofail,* ]] || opts+=',nofail'
      dump=${f[4]:-0} pass=${f[5]:-$pass}
    fi
  fi
  printf 'UUID=%s %s %s %s %s %s' "$NEW_UUID" "$MOUNT" "$NEW_FSTYPE" "$opts" "$dump" "$pass"
}

# Does the fstab entry's source name the current filesystem?
entry_names_current() {
  local spec=$1 label
  case "$spec" in
    UUID=*) [[ ${spec#UUID=} == "$OLD_UUID" ]] ;;
    LABEL=*)
      label=$(blkid -p -o value -s LABEL -- "$OLD_DEV" 2>/dev/null || true)
      [[ -n $label && ${spec#LABEL=} == "$label" ]]
      ;;
    /*) [[ $(readlink -f -- "$spec" 2>/dev/null) == "$OLD_DEV" ]] ;;
    *) return 0 ;;
  esac
}

# Reads fstab: ORIGINAL_TAB (the file as before this migration) and SWITCHED_TAB (as after).
plan_fstab() {
  [[ -L $FSTAB ]] && refuse "FstabFile $FSTAB is a symlink; pass the real file"
  [[ -f $FSTAB ]] || refuse "FstabFile $FSTAB does not exist or is not a regular file"
  # Next to fstab (same filesystem: link and rename stay atomic); a dry run writes nothing there.
  local base
  base=$(dirname -- "$FSTAB")
  [[ $DRY_RUN == true ]] && base=${TMPDIR:-/tmp}
  PRIVATE_DIR=$(mktemp -d -p "$base" ".fstab.migrate-data-volume.XXXXXX" 2>/dev/null) ||
    refuse "cannot create a private directory next to $FSTAB (is the root disk full or read-only?)"
  ORIGINAL_TAB=$PRIVATE_DIR/original SWITCHED_TAB=$PRIVATE_DIR/switched
  local out rc=0 entry spec
  out=$(fstab_edit unswitch "$FSTAB" 2>&1 >"$ORIGINAL_TAB") || rc=$?
  ((rc == 0)) || refuse "cannot read $FSTAB: $out"
  if ! cmp -s -- "$FSTAB" "$ORIGINAL_TAB"; then
    WARNINGS+=("$FSTAB already names UUID=$NEW_UUID for $MOUNT (an earlier run of this migration was interrupted); the entry before it is restored on rollback")
  fi
  entry=$(fstab_edit check "$ORIGINAL_TAB") || refuse "cannot edit $FSTAB safely: $entry"
  if [[ -n $entry ]]; then
    spec=$(awk '{ print $1 }' <<<"$entry")
    entry_names_current "$spec" || refuse "the $FSTAB entry for $MOUNT names $spec, but $MOUNT is mounted from $OLD_DEV (UUID=$OLD_UUID); fix fstab first"
  else
    WARNINGS+=("$FSTAB has no entry for $MOUNT: one is added")
  fi
  local line stamp
  line=$(new_entry_line "$entry")
  stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  FT_MARKER_LINE="$MARKER $stamp: $MOUNT moved to UUID=$NEW_UUID ($NEW_FSTYPE) from UUID=$OLD_UUID; the previous entry${entry:+ follows, commented out}${entry:- did not exist}" \
    FT_NEW_LINE=$line fstab_edit switch "$ORIGINAL_TAB" >"$SWITCHED_TAB" ||
    refuse "cannot compute the new $FSTAB"
  chmod --reference="$FSTAB" -- "$ORIGINAL_TAB" "$SWITCHED_TAB"
  chown --reference="$FSTAB" -- "$ORIGINAL_TAB" "$SWITCHED_TAB"
}

show_fstab_diff() {
  if command -v diff >/dev/null 2>&1; then
    diff -u --label "$FSTAB" --label "$FSTAB (new)" -- "$FSTAB" "$SWITCHED_TAB" >&2 || true
  fi
}

# <FstabFile>.bak-<stamp>[-N] as a hard link to this run's copy (lib/file-backup.sh).
backup_fstab() {
  link_backup "$FSTAB" "$PRIVATE_DIR/backup" || refuse "$BACKUP_PROBLEM"
  FSTAB_BACKUP=$BACKUP_NAME
  ACTIONS+=("backed up $FSTAB to $FSTAB_BACKUP")
}

# Replaces fstab with the file $1, atomically (a copy in the private directory, renamed over it).
install_fstab() {
  local src=$1 new=$PRIVATE_DIR/fstab.new
  rm -f -- "$new"
  if cp -p -- "$src" "$new" && cmp -s -- "$src" "$new"; then
    sync -- "$new" 2>/dev/null || true
    mv -f -T -- "$new" "$FSTAB" && return 0
  fi
  rm -f -- "$new"
  return 1
}

# --- the copy ----------------------------------------------------------------------------------

RSYNC_FLAGS=(-aHAX --numeric-ids --sparse --delete -x --exclude=/lost+found)

run_rsync() {
  local what=$1 rc=0
  shift
  rsync "${RSYNC_FLAGS[@]}" "$@" -- "$MOUNT/" "$STAGING/" >&2 || rc=$?
  log "rsync ($what) exit $rc"
  return "$rc"
}

staging_is_new() {
  [[ $(findmnt -n -r -o SOURCE --mountpoint "$STAGING" 2>/dev/null | tail -n 1) == "$NEW_DEV" ]]
}

mount_staging() {
  if staging_is_new; then return 0; fi
  if findmnt -n --mountpoint "$STAGING" >/dev/null 2>&1; then
    fail "$STAGING is already a mount point of something else"
  fi
  if [[ -e $STAGING && ! -d $STAGING ]]; then fail "$STAGING exists and is not a directory"; fi
  mkdir -p -- "$STAGING"
  if [[ -n $(ls -A -- "$STAGING") ]]; then fail "$STAGING is not empty"; fi
  mount -t "$NEW_FSTYPE" -- "$NEW_DEV" "$STAGING" || fail "cannot mount $NEW_DEV at $STAGING"
  ACTIONS+=("mounted $NEW_DEV at $STAGING")
}

unmount_staging_quietly() {
  if [[ -n $NEW_DEV && -n $STAGING ]] && staging_is_new; then
    sync -f -- "$STAGING" 2>/dev/null || true
    umount -- "$STAGING" 2>/dev/null || WARNINGS+=("could not unmount $STAGING")
  fi
}

make_filesystem() {
  local out rc=0
  if [[ $NEW_FSTYPE == xfs ]]; then
    out=$(mkfs.xfs -q -m uuid="$NEW_UUID" "$NEW_DEV" </dev/null 2>&1) || rc=$?
  else
    out=$(mkfs.ext4 -q -U "$NEW_UUID" ${INODE_RATIO:+-i "$INODE_RATIO"} "$NEW_DEV" </dev/null 2>&1) || rc=$?
  fi
  ((rc == 0)) || fail "mkfs.$NEW_FSTYPE on $NEW_DEV failed: $(tr '\n' ' ' <<<"$out")"
  ACTIONS+=("mkfs.$NEW_FSTYPE $NEW_DEV UUID=$NEW_UUID${INODE_RATIO:+ inode ratio $INODE_RATIO}")
  udevadm settle 2>/dev/null || true
  [[ $(blkid -p -o value -s UUID -- "$NEW_DEV" 2>/dev/null) == "$NEW_UUID" ]] ||
    fail "mkfs.$NEW_FSTYPE ran but $NEW_DEV does not show UUID=$NEW_UUID"
}

check_space() {
  local avail ifree need used_now
  avail=$(df -B1 --output=avail -- "$STAGING" | tail -n 1 | tr -d ' ')
  used_now=$(df -B1 --output=used -- "$STAGING" | tail -n 1 | tr -d ' ')
  # What is on the new filesystem already (a resumed run) counts as available for the copy.
  need=$((OLD_USED + OLD_USED / 100))
  if ((avail + used_now < need)); then
    refuse_after_staging "the new filesystem is too small: $((avail + used_now)) bytes usable, $MOUNT uses $OLD_USED (+1% margin)"
  fi
  if [[ $NEW_FSTYPE == ext4 ]]; then
    ifree=$(df --output=itotal -- "$STAGING" | tail -n 1 | tr -d ' ')
    if ((ifree < OLD_INODES_USED)); then
      refuse_after_staging "the new ext4 filesystem has $ifree inodes, $MOUNT uses $OLD_INODES_USED; pass a smaller InodeRatio"
    fi
  fi
}

refuse_after_staging() {
  unmount_staging_quietly
  finish 3 refused "$1 (the service was not stopped; $MOUNT is unchanged; the new disk keeps what was written to it so far)"
}

# PIDs (with names) that have a file open, or their cwd/root, on the filesystem with device $1.
processes_on_fs() {
  local dev=$1 pid out=''
  while read -r d path; do
    [[ $d == "$dev" ]] || continue
    pid=${path#/proc/}
    pid=${pid%%/*}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    [[ " $out " == *" $pid("* ]] && continue
    out+=" $pid($(cat "/proc/$pid/comm" 2>/dev/null || echo '?'))"
  done < <(
    find -L /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -printf '%D %p\n' 2>/dev/null || true
    find -L /proc/[0-9]*/cwd /proc/[0-9]*/root -maxdepth 0 -printf '%D %p\n' 2>/dev/null || true
  )
  printf '%s' "${out# }"
}

# Two trees' manifests must match: every path (NUL-terminated) with its type, mode, owner; size,
# mtime and link count of files; size, mtime and target of symlinks; mtime of directories.
manifest() {
  (cd -- "$1" && find . -xdev -path ./lost+found -prune -o \
    \( -type d -printf '%P\t%y %m %U %G %T@\0' \) -o \
    \( -type f -printf '%P\t%y %m %U %G %s %T@ %n\0' \) -o \
    \( -type l -printf '%P\t%y %U %G %T@ %l\0' \) -o \
    -printf '%P\t%y %m %U %G %T@\0' | sort -z | sha256sum | cut -d' ' -f1)
}

# Counts of one tree: files (distinct inodes), dirs, symlinks, other; bytes of distinct files.
tree_counts() {
  (cd -- "$1" && find . -xdev -path ./lost+found -prune -o -printf '%y %i %s\n') |
    awk '$1 == "f" { if (!($2 in seen)) { seen[$2] = 1; f++; b += $3 } next }
         $1 == "d" { d++; next } $1 == "l" { l++; next } { o++ }
         END { printf "%d %d %d %d %d\n", f, d, l, o, b }'
}

verify_copy() {
  local t0=$EPOCHREALTIME old_sha new_sha old_counts new_counts diffs rc=0
  V_METHOD='manifest (type, mode, owner, size, mtime, links) + rsync --checksum of every file'
  # Drop the new filesystem's cached pages: unmounting evicts them, so the checks read the disk.
  sync -f -- "$STAGING"
  umount -- "$STAGING" || fail "cannot unmount $STAGING before the verification"
  mount -t "$NEW_FSTYPE" -- "$NEW_DEV" "$STAGING" || fail "cannot mount $NEW_DEV at $STAGING again for the verification"
  local t1=$EPOCHREALTIME
  old_sha=$(manifest "$MOUNT") new_sha=$(manifest "$STAGING")
  old_counts=$(tree_counts "$MOUNT") new_counts=$(tree_counts "$STAGING")
  read -r V_FILES V_DIRS V_LINKS V_OTHER V_BYTES <<<"$new_counts"
  V_SHA=$new_sha
  if [[ $old_sha != "$new_sha" || $old_counts != "$new_counts" ]]; then
    fail "verification failed: the copy's manifest differs (old: $old_counts sha256 $old_sha; new: $new_counts sha256 $new_sha)"
  fi
  V_MANIFEST_SECONDS=$(since "$t1")
  t1=$EPOCHREALTIME
  diffs=$(rsync "${RSYNC_FLAGS[@]}" --checksum --dry-run --itemize-changes -- "$MOUNT/" "$STAGING/" 2>&1) || rc=$?
  ((rc == 0)) || fail "verification failed: rsync --checksum exit $rc: $(head -c 300 <<<"$diffs" | tr '\n' ' ')"
  [[ -z $diffs ]] || fail "verification failed: files differ after the copy: $(head -c 300 <<<"$diffs" | tr '\n' ' ')"
  V_CHECKSUM_SECONDS=$(since "$t1")
  V_IDENTICAL=true
  V_SECONDS=$(since "$t0")
  ACTIONS+=("verified: $V_FILES files, $V_DIRS dirs, $V_LINKS symlinks, $V_OTHER other, $V_BYTES bytes, every file's checksum equal")
  log "verified in $V_SECONDS s: $V_FILES files, $V_BYTES bytes, manifest sha256 $V_SHA"
}

# --- the service -------------------------------------------------------------------------------


service_active() { [[ $(systemctl is-active "$SERVICE" 2>/dev/null) == active ]]; }

stop_service() {
  local t0=$EPOCHREALTIME i
  IN_CRITICAL=true
  STOP_AT=$EPOCHREALTIME
  if service_active; then
    SERVICE_WAS_ACTIVE=true
    log "stopping $SERVICE"
    systemctl stop "$SERVICE" || fail "systemctl stop $SERVICE failed"
    SERVICE_STOPPED=true
    ACTIONS+=("stopped $SERVICE")
  else
    log "$SERVICE is not running; nothing to stop"
  fi
  for ((i = 0; i < 100; i++)); do service_active || break; sleep 0.1; done
  service_active && fail "$SERVICE is still active after systemctl stop"
  T_STOP=$(since "$t0")
}

start_service() {
  local t0=$EPOCHREALTIME
  log "starting $SERVICE"
  SERVICE_STARTED=true
  systemctl start "$SERVICE" || fail "systemctl start $SERVICE failed on the new filesystem"
  wait_healthy "$HEALTH_TIMEOUT" || fail "$SERVICE did not become healthy at $HEALTH_URL within $HEALTH_TIMEOUT s on the new filesystem"
  HEALTHY=true
  T_START=$(since "$t0")
  [[ $SERVICE_STOPPED == true ]] && T_DOWN=$(since "$STOP_AT")
  ACTIONS+=("started $SERVICE, healthy")
  log "$SERVICE is healthy on the new filesystem${T_DOWN:+ (down for $T_DOWN s)}"
}

# --- the switch --------------------------------------------------------------------------------

mounted_uuid() {
  local src
  src=$(findmnt -n -r -o SOURCE --mountpoint "$MOUNT" 2>/dev/null | tail -n 1)
  [[ -n $src ]] || return 0
  blkid -p -o value -s UUID -- "$(readlink -f -- "$src")" 2>/dev/null || true
}

switch_mounts() {
  local t0=$EPOCHREALTIME busy
  install_fstab "$SWITCHED_TAB" || fail "cannot write $FSTAB (is the root disk full or read-only?)"
  FSTAB_CHANGED=true
  ACTIONS+=("switched $FSTAB: $MOUNT on UUID=$NEW_UUID with nofail, the old entry kept commented")
  sync -f -- "$STAGING" 2>/dev/null || true
  umount -- "$STAGING" || fail "cannot unmount $STAGING"
  if ! umount -- "$MOUNT"; then
    busy=$(processes_on_fs "$OLD_FSDEV_NUM")
    fail "cannot unmount $MOUNT (old filesystem busy${busy:+: $busy})"
  fi
  OLD_UNMOUNTED=true
  ACTIONS+=("unmounted the old filesystem from $MOUNT")
  mount --fstab "$FSTAB" -- "$MOUNT" || fail "mount --fstab $FSTAB $MOUNT failed with the new entry"
  [[ $(mounted_uuid) == "$NEW_UUID" ]] || fail "$MOUNT is mounted, but not from UUID=$NEW_UUID"
  ACTIONS+=("mounted UUID=$NEW_UUID at $MOUNT from $FSTAB")
  if [[ $FSTAB == /etc/fstab ]]; then systemctl daemon-reload 2>/dev/null || WARNINGS+=("systemctl daemon-reload failed"); fi
  T_SWITCH=$(since "$t0")
}

# Undoes everything after the stop; the old filesystem is mounted again and the service started.
roll_back() {
  local why=$1 problems=() state
  IN_CRITICAL=false
  ROLLED_BACK=true
  log "$why: rolling back"
  if [[ $SERVICE_STARTED == true ]]; then
    systemctl stop "$SERVICE" 2>/dev/null || true
  fi
  if [[ $(mounted_uuid) == "$NEW_UUID" ]]; then
    umount -- "$MOUNT" 2>/dev/null || problems+=("cannot unmount the new filesystem from $MOUNT")
  fi
  unmount_staging_quietly
  if [[ -n $ORIGINAL_TAB && -f $ORIGINAL_TAB ]] && ! cmp -s -- "$FSTAB" "$ORIGINAL_TAB"; then
    if install_fstab "$ORIGINAL_TAB"; then FSTAB_CHANGED=false; else problems+=("cannot restore $FSTAB (the backup is $FSTAB_BACKUP)"); fi
  elif [[ -n $ORIGINAL_TAB ]]; then
    FSTAB_CHANGED=false
  fi
  if ! findmnt -n --mountpoint "$MOUNT" >/dev/null 2>&1; then
    # As fstab mounts it (what a boot would do), else with the options it had.
    if [[ -z $(fstab_edit check "$FSTAB" 2>/dev/null) ]] || ! mount --fstab "$FSTAB" -- "$MOUNT" 2>/dev/null; then
      mount -t "$OLD_FSTYPE" -o "$OLD_OPTS" -- "$OLD_DEV" "$MOUNT" 2>/dev/null ||
        mount -t "$OLD_FSTYPE" -- "$OLD_DEV" "$MOUNT" 2>/dev/null || true
    fi
  fi
  if [[ $(mounted_uuid) != "$OLD_UUID" ]]; then problems+=("$MOUNT is NOT on the old filesystem UUID=$OLD_UUID")
  elif [[ $OLD_UNMOUNTED == true ]]; then ACTIONS+=("rollback: mounted the old filesystem at $MOUNT again"); fi
  if [[ $FSTAB == /etc/fstab ]]; then systemctl daemon-reload 2>/dev/null || true; fi
  if [[ $SERVICE_WAS_ACTIVE == true ]]; then
    if systemctl start "$SERVICE" 2>/dev/null && wait_healthy "$HEALTH_TIMEOUT"; then
      ROLLBACK_HEALTHY=true HEALTHY=true
      [[ -n $STOP_AT ]] && T_DOWN=$(since "$STOP_AT")
    else
      ROLLBACK_HEALTHY=false
      state=$(systemctl is-active "$SERVICE" 2>/dev/null || true)
      problems+=("$SERVICE is not healthy on the old filesystem (${state:-unknown})")
    fi
  else
    ROLLBACK_HEALTHY=false
    health_once 3 && ROLLBACK_HEALTHY=true HEALTHY=true
  fi
  local outcome
  if ((${#problems[@]} == 0)); then
    outcome="rolled back: $MOUNT is on the old filesystem again, $FSTAB as before"
    [[ $SERVICE_WAS_ACTIVE == true ]] && outcome+=", $SERVICE running and healthy"
  else
    outcome="ROLLBACK INCOMPLETE: ${problems[*]}; act now"
  fi
  outcome+="; the new disk $NEW_DEV is left as it is (unmounted) for inspection"
  finish 1 rolled-back "$why; $outcome"
}

# --- main --------------------------------------------------------------------------------------

check_unused() {
  local use
  find_new_disk
  use=$(disk_use "$NEW_DEV")
  if [[ -n $use ]]; then finish 3 in-use "$NEW_DEV${NEW_VOLUME:+ (volume $NEW_VOLUME)} $use"; fi
  emit_result unused ''
  exit 0
}

already_migrated() {
  local entry spec
  NEW_FSTYPE=$OLD_FSTYPE NEW_UUID=$OLD_UUID NEW_STATE=in-use
  entry=$(FT_MODE=check FT_MOUNT=$MOUNT awk "$(fstab_program)" "$FSTAB" 2>/dev/null || true)
  spec=$(awk '{ print $1 }' <<<"$entry")
  [[ $spec == "UUID=$OLD_UUID" ]] || refuse "$MOUNT is already on the new disk $NEW_DEV, but $FSTAB names ${spec:-nothing} for it, not UUID=$OLD_UUID; fix fstab by hand"
  if ! service_active && [[ $DRY_RUN == false ]]; then
    systemctl start "$SERVICE" || finish 1 failed "$MOUNT is already on the new disk, but systemctl start $SERVICE failed"
    ACTIONS+=("started $SERVICE")
  fi
  if wait_healthy "$HEALTH_TIMEOUT"; then HEALTHY=true; fi
  [[ $HEALTHY == true ]] || finish 1 failed "$MOUNT is already on the new disk $NEW_DEV, but $SERVICE is not healthy at $HEALTH_URL"
  emit_result already-migrated "$MOUNT is already on the new disk $NEW_DEV (UUID=$OLD_UUID) and $FSTAB names it: nothing to do"
  exit 0
}

dry_run_report() {
  local plan=''
  if [[ -z $NEW_DEV ]]; then
    plan="would migrate $MOUNT ($OLD_FSTYPE, $OLD_USED bytes used) to a new ${NEW_FSTYPE} disk (none given yet)"
  else
    plan="would $([[ $NEW_STATE == blank ]] && echo "make $NEW_FSTYPE UUID=$NEW_UUID on" || echo "resume on") $NEW_DEV ($NEW_SIZE bytes), copy $MOUNT ($OLD_USED bytes used) while $SERVICE runs, stop it, copy again, verify, switch $FSTAB and the mount, start it"
    ((NEW_SIZE >= OLD_USED + OLD_USED / 100)) || WARNINGS+=("the new disk ($NEW_SIZE bytes) looks too small for the $OLD_USED bytes in use")
    show_fstab_diff
  fi
  log "dry run: $plan"
  emit_result dry-run "dry run: $plan; nothing was changed"
  exit 0
}

main() {
  trap on_exit EXIT
  trap on_signal TERM INT HUP
  read_parameters
  check_tools
  cd /
  if [[ $ACTION == check-unused ]]; then check_unused; fi
  [[ $DRY_RUN == true ]] || take_lock
  find_current
  NEW_FSTYPE=${FS_PARAM:-$OLD_FSTYPE}
  if [[ -n $INODE_RATIO && $NEW_FSTYPE != ext4 ]]; then
    bad_parameter "InodeRatio applies to ext4 only (xfs allocates inodes as needed)"
  fi
  if [[ -n $NEW_VOLUME || -n $DEVICE_PARAM ]]; then
    find_new_disk
    if [[ $NEW_DEV == "$OLD_DISK" || $NEW_DEV == "$OLD_DEV" ]]; then already_migrated; fi
    check_new_disk_usable
    ((NEW_SIZE >= OLD_USED)) || refuse "the new disk $NEW_DEV ($NEW_SIZE bytes) is smaller than the $OLD_USED bytes $MOUNT uses; it is not touched"
    classify_new_disk
  fi
  plan_fstab
  if [[ $DRY_RUN == true ]]; then dry_run_report; fi

  backup_fstab
  if [[ $NEW_STATE == blank ]]; then make_filesystem; fi
  mount_staging
  check_space
  local t0=$EPOCHREALTIME i rc
  for ((i = 1; i <= PRE_PASSES; i++)); do
    rc=0
    run_rsync "pass $i of $PRE_PASSES while $SERVICE runs" || rc=$?
    ((rc == 0 || rc == 24)) || fail "rsync while $SERVICE runs failed (exit $rc)"
  done
  # Written back now, while the service still runs, not during the downtime.
  sync -f -- "$STAGING"
  T_PRE=$(since "$t0")
  ((PRE_PASSES > 0)) && ACTIONS+=("copied $MOUNT to $STAGING while $SERVICE ran ($PRE_PASSES pass(es), $T_PRE s)")

  stop_service
  local busy
  busy=$(processes_on_fs "$OLD_FSDEV_NUM")
  [[ -z $busy ]] || fail "processes still have files open on $MOUNT after the stop: $busy (the copy would not be consistent)"
  t0=$EPOCHREALTIME
  rc=0
  run_rsync "final, $SERVICE stopped" || rc=$?
  ((rc == 0)) || fail "the final rsync failed (exit $rc)"
  sync -f -- "$STAGING" || fail "sync of the new filesystem failed"
  T_FINAL=$(since "$t0")
  ACTIONS+=("final copy with $SERVICE stopped ($T_FINAL s)")
  verify_copy
  T_VERIFY=$V_SECONDS
  switch_mounts
  start_service
  IN_CRITICAL=false
  NEW_STATE=in-use
  emit_result migrated "$MOUNT moved from $OLD_DEV (UUID=$OLD_UUID) to $NEW_DEV (UUID=$NEW_UUID); $SERVICE healthy; the old disk is unmounted and unchanged"
}

main "$@"
