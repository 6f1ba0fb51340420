#!/usr/bin/env bash
# expand-volume.sh (runbook §5A, the host half of ExpandVolume): grow the filesystem mounted at a mount point to fill its (already enlarged)
# EBS volume, online, without touching data (runbook §5A, step 3).
#
# Reads:
#   SSM_MountPoint  required; absolute path of letters, digits, . _ - and / (no . or .. segment)
#   SSM_VolumeId    optional; vol-<hex>. When set, the disk's NVMe serial must be this volume
#                   (vol0123... without the dash) or nothing is done. A disk with no serial is refused.
#   SSM_DryRun      true|false (default false); true does every check and changes nothing.
#
# Does: finds the device from the mount point (findmnt); for a partition, grows it with growpart
# (TMPDIR on a tmpfs: the disk may be 100% full; NOCHANGE is success), then resize2fs <device>
# (ext4) or xfs_growfs <mountpoint> (xfs), then verifies with df. Supports a whole-disk filesystem
# and partitions on GPT and MBR. Stops at (and reports) the MBR 2 TiB limit and the 16 TiB limit
# of ext4 without the 64bit feature. Refuses LVM (pvresize/lvextend are not supported), other
# device-mapper/md stacks, bind mounts and filesystems other than xfs and ext4. Online ext4
# growth needs CAP_SYS_RESOURCE: without it the script refuses before changing anything.
#
# Prints: progress on stderr; last stdout line one JSON object:
#   {"status":"grown"|"nothing-to-grow"|"dry-run"|"refused"|"failed", "reason", "mountPoint",
#    "device", "disk", "partition", "partitionTable", "filesystem", "serial", "volumeId", "dryRun",
#    "sizeBeforeBytes", "sizeAfterBytes" (df size), "fsBytesBefore", "fsBytesAfter",
#    "diskBytes", "partitionBytesBefore", "partitionBytesAfter", "actions":[...], "warnings":[...]}
# Exit: 0 grown / nothing to grow / dry run; 2 invalid input; 3 refused (nothing changed);
#       1 a step failed (the reason says which and what had already been done).
#
# Functions can be sourced by other scripts: main runs only when the file is executed.
set -euo pipefail

readonly VOLUME_ID_RE='^(vol-[0-9a-f]{8,17})?$'
readonly MiB=1048576
# A partition or filesystem grows only when it gains at least this much (growpart's own fudge).
readonly MIN_GROWTH_BYTES=$MiB
readonly SECTORS_32BIT=4294967296

MOUNT_POINT=''
VOLUME_ID=''
DRY_RUN='false'
DEVICE=''
DISK=''
PART_NUM=''
PART_TABLE=''
FSTYPE=''
SERIAL=''
DISK_BYTES=0
PART_BYTES_BEFORE=0
PART_BYTES_AFTER=0
FS_BYTES_BEFORE=0
FS_BYTES_AFTER=0
DF_BEFORE=0
DF_AFTER=0
WORK_TMP=''
RESULT_EMITTED=false
ACTIONS=()
WARNINGS=()

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='expand-volume'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh

emit_result() {
  local status=$1 reason=${2:-}
  RESULT_EMITTED=true
  local part_json='null'
  [[ -n "$PART_NUM" ]] && part_json=$PART_NUM
  printf '{"status":%s,"reason":%s,"mountPoint":%s,"device":%s,"disk":%s,"partition":%s,' \
    "$(json_str "$status")" "$(json_or_null "$reason")" "$(json_str "$MOUNT_POINT")" \
    "$(json_or_null "$DEVICE")" "$(json_or_null "$DISK")" "$part_json"
  printf '"partitionTable":%s,"filesystem":%s,"serial":%s,"volumeId":%s,"dryRun":%s,' \
    "$(json_or_null "$PART_TABLE")" "$(json_or_null "$FSTYPE")" "$(json_or_null "$SERIAL")" \
    "$(json_or_null "$VOLUME_ID")" "$DRY_RUN"
  printf '"sizeBeforeBytes":%s,"sizeAfterBytes":%s,"fsBytesBefore":%s,"fsBytesAfter":%s,' \
    "$DF_BEFORE" "$DF_AFTER" "$FS_BYTES_BEFORE" "$FS_BYTES_AFTER"
  printf '"diskBytes":%s,"partitionBytesBefore":%s,"partitionBytesAfter":%s,"actions":%s,"warnings":%s}\n' \
    "$DISK_BYTES" "$PART_BYTES_BEFORE" "$PART_BYTES_AFTER" \
    "$(json_array ${ACTIONS[@]+"${ACTIONS[@]}"})" "$(json_array ${WARNINGS[@]+"${WARNINGS[@]}"})"
}

# Ends the run: one-line reason on stderr, the JSON result on stdout, exit code $1.
finish_with() {
  local code=$1 status=$2 reason=$3
  printf 'expand-volume: %s\n' "$reason" >&2
  emit_result "$status" "$reason"
  exit "$code"
}

refuse() { finish_with 3 refused "$1 (nothing was changed)"; }
fail() { finish_with 1 failed "$1"; }

# EXIT trap: removes the temp dir; an unexpected failure (set -e) still ends with a JSON line.
on_exit() {
  local rc=$?
  if [[ -n "$WORK_TMP" ]]; then rm -rf -- "$WORK_TMP"; fi
  if ((rc != 0)) && [[ "$RESULT_EMITTED" == false ]]; then
    local reason="unexpected failure (exit $rc) after: ${ACTIONS[*]:-no change}"
    printf 'expand-volume: %s\n' "$reason" >&2
    emit_result failed "$reason"
  fi
  exit "$rc"
}

validate_inputs() {
  MOUNT_POINT=${SSM_MountPoint:-}
  VOLUME_ID=${SSM_VolumeId:-}
  DRY_RUN=${SSM_DryRun:-false}
  [[ "$MOUNT_POINT" =~ $MOUNT_POINT_RE ]] || finish_with 2 refused "invalid MountPoint: expected an absolute path of letters, digits, . _ - and / with no . or .. segment"
  [[ "$VOLUME_ID" =~ $VOLUME_ID_RE ]] || finish_with 2 refused "invalid VolumeId: expected vol- and 8 to 17 hex digits, or empty"
  [[ "$DRY_RUN" == true || "$DRY_RUN" == false ]] || finish_with 2 refused "invalid DryRun: expected true or false"
}

# Sets DEVICE and FSTYPE from the mount table; refuses what is not a plain block-device mount.
find_mounted_device() {
  local source fsroot
  if ! findmnt -n --mountpoint "$MOUNT_POINT" >/dev/null 2>&1; then
    refuse "$MOUNT_POINT is not a mount point"
  fi
  source=$(findmnt -n -r -o SOURCE --mountpoint "$MOUNT_POINT" | tail -n 1)
  FSTYPE=$(findmnt -n -r -o FSTYPE --mountpoint "$MOUNT_POINT" | tail -n 1)
  fsroot=$(findmnt -n -r -o FSROOT --mountpoint "$MOUNT_POINT" | tail -n 1)
  [[ "$fsroot" == / ]] || refuse "$MOUNT_POINT is a bind mount of $fsroot on $source; grow the filesystem at its own mount point"
  [[ -b "$source" ]] || refuse "$MOUNT_POINT is $FSTYPE on $source, not a filesystem on a block device"
  DEVICE=$(readlink -f -- "$source")
}

# Sets DISK, PART_NUM; refuses LVM and other stacked devices.
find_disk() {
  local name type dm_uuid
  name=$(basename -- "$DEVICE")
  type=$(lsblk -dno TYPE -- "$DEVICE" 2>/dev/null | head -n 1)
  dm_uuid=''
  [[ -r "/sys/class/block/$name/dm/uuid" ]] && dm_uuid=$(<"/sys/class/block/$name/dm/uuid")
  if [[ "$type" == lvm || "$dm_uuid" == LVM-* ]]; then
    refuse "$MOUNT_POINT is on LVM logical volume $DEVICE: growing LVM (pvresize/lvextend) is not supported by this document; grow it by hand"
  fi
  if [[ -d "/sys/class/block/$name/dm" || "$type" == crypt || "$type" == raid* || "$type" == md ]]; then
    refuse "$MOUNT_POINT is on $DEVICE (type ${type:-device-mapper}): only a plain disk or partition is supported"
  fi
  if [[ -r "/sys/class/block/$name/partition" ]]; then
    PART_NUM=$(<"/sys/class/block/$name/partition")
    DISK=/dev/$(basename -- "$(dirname -- "$(readlink -f "/sys/class/block/$name")")")
    PART_TABLE=$(blkid -p -o value -s PTTYPE -- "$DISK" 2>/dev/null || true)
    case "$PART_TABLE" in
      gpt | dos) ;;
      *) refuse "partition table ${PART_TABLE:-unknown} on $DISK is not supported (GPT and MBR are)" ;;
    esac
  else
    DISK=$DEVICE
  fi
}

check_filesystem_type() {
  case "$FSTYPE" in
    xfs | ext4) ;;
    *) refuse "filesystem $FSTYPE on $DEVICE is not supported (xfs and ext4 are)" ;;
  esac
}

disk_serial() {
  local disk_name serial=''
  disk_name=$(basename -- "$DISK")
  if [[ -r "/sys/block/$disk_name/device/serial" ]]; then
    serial=$(<"/sys/block/$disk_name/device/serial")
  else
    serial=$(lsblk -dno SERIAL -- "$DISK" 2>/dev/null || true)
  fi
  printf '%s' "$serial" | tr -d '[:space:]'
}

# With a VolumeId, the disk must prove it is that volume (EBS NVMe serial vol0123... = vol-0123...).
check_volume_id() {
  SERIAL=$(disk_serial)
  [[ -z "$VOLUME_ID" ]] && return 0
  local want=${VOLUME_ID//-/}
  [[ -n "$SERIAL" ]] || refuse "VolumeId $VOLUME_ID given but $DISK reports no serial, so it cannot be confirmed as that volume"
  [[ "$SERIAL" == "$want" ]] || refuse "VolumeId mismatch: $DISK has serial $SERIAL, expected $want"
  log "$DISK serial $SERIAL matches $VOLUME_ID"
}

# A private directory on a tmpfs for growpart's temp files (the data disk may be full).
make_tmpdir() {
  local candidate
  for candidate in /run /dev/shm /tmp; do
    if [[ -d "$candidate" && -w "$candidate" && "$(stat -f -c %T -- "$candidate" 2>/dev/null)" == tmpfs ]]; then
      WORK_TMP=$(mktemp -d -p "$candidate" expand-volume.XXXXXX)
      return 0
    fi
  done
  WARNINGS+=("no writable tmpfs found: growpart uses ${TMPDIR:-/tmp}")
  WORK_TMP=$(mktemp -d)
}

block_bytes() { blockdev --getsize64 "$1"; }

df_size_bytes() { df -B1 --output=size -- "$1" | tail -n 1 | tr -d ' '; }

# Bytes the filesystem itself spans (block count × block size), not df's user-visible size.
fs_bytes() {
  local fstype=$1 device=$2 mount_point=$3 info bsize blocks
  if [[ "$fstype" == xfs ]]; then
    info=$(xfs_info "$mount_point")
    bsize=$(sed -n 's/^data *= *bsize=\([0-9]*\) *blocks=\([0-9]*\).*/\1/p' <<<"$info")
    blocks=$(sed -n 's/^data *= *bsize=\([0-9]*\) *blocks=\([0-9]*\).*/\2/p' <<<"$info")
  else
    info=$(dumpe2fs -h -- "$device" 2>/dev/null)
    bsize=$(sed -n 's/^Block size: *\([0-9]*\)$/\1/p' <<<"$info")
    blocks=$(sed -n 's/^Block count: *\([0-9]*\)$/\1/p' <<<"$info")
  fi
  [[ -n "$bsize" && -n "$blocks" ]] || return 1
  printf '%s' $((bsize * blocks))
}

# Largest size ext4 can reach: unlimited here with 64bit; 2^32 blocks without it (16 TiB at 4 KiB).
ext4_limit_bytes() {
  local info bsize
  info=$(dumpe2fs -h -- "$1" 2>/dev/null)
  if grep -q '^Filesystem features:.*\b64bit\b' <<<"$info"; then
    printf '0'
    return 0
  fi
  bsize=$(sed -n 's/^Block size: *\([0-9]*\)$/\1/p' <<<"$info")
  printf '%s' $(((SECTORS_32BIT - 1) * bsize))
}

has_cap_sys_resource() {
  local caps
  caps=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
  (((16#${caps: -8} >> 24) & 1))
}

# Asks the kernel to re-read a SCSI/virtio disk's size (NVMe EBS disks update by themselves).
rescan_disk() {
  local rescan
  rescan=/sys/class/block/$(basename -- "$DISK")/device/rescan
  if [[ -w "$rescan" ]]; then
    echo 1 >"$rescan"
    ACTIONS+=("rescan $DISK")
  fi
}

# growpart's verdict lines on stderr (not its sfdisk dumps, unless it failed).
show_growpart_output() {
  local line verdicts
  verdicts=$(grep -E '^(CHANGED?|NOCHANGE|FAILED|WARN|ERROR)' <<<"$1" || true)
  [[ -n "$verdicts" ]] || verdicts=$1
  while IFS= read -r line; do log "growpart: $line"; done <<<"$verdicts"
}

# Prints the partition's size in bytes after `growpart --dry-run` (its current size on NOCHANGE).
planned_partition_bytes() {
  local disk=$1 num=$2 out rc=0 sectors
  out=$(TMPDIR=$WORK_TMP growpart --dry-run "$disk" "$num" 2>&1) || rc=$?
  show_growpart_output "$out"
  if ((rc == 1)) && grep -q NOCHANGE <<<"$out"; then
    block_bytes "$DEVICE"
    return 0
  fi
  ((rc == 0)) || return 1
  sectors=$(sed -n 's/^CHANGED\{0,1\}: .* new: size=\([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
  [[ -n "$sectors" ]] || return 1
  printf '%s' $((sectors * 512))
}

# Grows partition $2 of disk $1 to fill the disk. NOCHANGE (exit 1) is success.
grow_partition() {
  local disk=$1 num=$2 out rc=0
  out=$(TMPDIR=${WORK_TMP:-${TMPDIR:-/tmp}} growpart "$disk" "$num" 2>&1) || rc=$?
  show_growpart_output "$out"
  if ((rc == 1)) && grep -q NOCHANGE <<<"$out"; then
    return 0
  fi
  ((rc == 0)) || return 1
  ACTIONS+=("growpart $disk $num")
}

# Makes sure the kernel uses the partition's new size (growpart normally does this itself).
refresh_partition() {
  local disk=$1 num=$2 part=$3 want=$4
  if (($(block_bytes "$part") < want)); then
    partx -u --nr "$num" "$disk" || return 1
    ACTIONS+=("partx -u --nr $num $disk")
  fi
}

# Grows the filesystem: xfs_growfs by mount point, resize2fs by device (optionally to N blocks).
resize_filesystem() {
  local fstype=$1 device=$2 mount_point=$3 blocks=${4:-}
  if [[ "$fstype" == xfs ]]; then
    xfs_growfs "$mount_point" | tail -n 1 >&2 || return 1
    ACTIONS+=("xfs_growfs $mount_point")
  else
    # shellcheck disable=SC2086 # $blocks is empty or one number
    resize2fs "$device" $blocks >&2 || return 1
    ACTIONS+=("resize2fs $device${blocks:+ $blocks}")
  fi
}

read_sizes() {
  DF_BEFORE=$(df_size_bytes "$MOUNT_POINT")
  DF_AFTER=$DF_BEFORE
  FS_BYTES_BEFORE=$(fs_bytes "$FSTYPE" "$DEVICE" "$MOUNT_POINT") || refuse "cannot read the $FSTYPE geometry of $DEVICE"
  FS_BYTES_AFTER=$FS_BYTES_BEFORE
  DISK_BYTES=$(block_bytes "$DISK")
  PART_BYTES_BEFORE=$(block_bytes "$DEVICE")
  PART_BYTES_AFTER=$PART_BYTES_BEFORE
}

main() {
  trap on_exit EXIT
  validate_inputs
  find_mounted_device
  find_disk
  check_filesystem_type
  read_sizes
  check_volume_id
  make_tmpdir
  if [[ "$DRY_RUN" == false ]]; then
    rescan_disk
    DISK_BYTES=$(block_bytes "$DISK")
  fi
  log "$MOUNT_POINT: $FSTYPE on $DEVICE (disk $DISK, ${PART_TABLE:-no} partition table), disk $DISK_BYTES bytes, filesystem $FS_BYTES_BEFORE bytes"

  # Plan: how large the partition becomes, and what the filesystem can grow to within its limits.
  local target_part=$PART_BYTES_BEFORE sector_size mbr_limit
  local grow_part=false grow_fs=false fs_target fs_limit=0 resize_blocks='' limit_reason=''
  if [[ -n "$PART_NUM" ]]; then
    target_part=$(planned_partition_bytes "$DISK" "$PART_NUM") || refuse "growpart cannot plan the growth of partition $PART_NUM on $DISK"
    if ((target_part >= PART_BYTES_BEFORE + MIN_GROWTH_BYTES)); then grow_part=true; fi
    if [[ "$PART_TABLE" == dos ]]; then
      sector_size=$(blockdev --getss "$DISK")
      mbr_limit=$((SECTORS_32BIT * sector_size))
      if ((DISK_BYTES > mbr_limit)); then
        limit_reason="the MBR (dos) partition table of $DISK limits partitions to 2 TiB ($mbr_limit bytes) while the disk has $DISK_BYTES bytes; convert to GPT offline or add a volume (runbook §5B)"
        WARNINGS+=("$limit_reason")
      fi
    fi
  fi
  fs_target=$target_part
  if [[ "$FSTYPE" == ext4 ]]; then
    fs_limit=$(ext4_limit_bytes "$DEVICE")
    if ((fs_limit > 0 && fs_target > fs_limit)); then
      fs_target=$fs_limit
      limit_reason="ext4 on $DEVICE lacks the 64bit feature and cannot exceed $fs_limit bytes (16 TiB at 4 KiB blocks) while the device has $target_part bytes; enable 64bit offline (resize2fs -b) or add a volume (runbook §5B)"
      WARNINGS+=("$limit_reason")
      resize_blocks=$((SECTORS_32BIT - 1))
    fi
  fi
  if ((fs_target >= FS_BYTES_BEFORE + MIN_GROWTH_BYTES)); then grow_fs=true; fi

  if [[ "$grow_part" == false && "$grow_fs" == false ]]; then
    [[ -z "$limit_reason" ]] || refuse "cannot grow $MOUNT_POINT: $limit_reason"
    log "nothing to grow: $FSTYPE on $DEVICE already fills its $([[ -n "$PART_NUM" ]] && echo partition || echo disk)"
    emit_result nothing-to-grow "nothing to grow: the filesystem already fills the ${PART_NUM:+partition and the }disk"
    return 0
  fi
  if [[ "$DRY_RUN" == true ]]; then
    if [[ "$grow_part" == true ]]; then
      ACTIONS+=("would run: growpart $DISK $PART_NUM (partition to $target_part bytes)")
    fi
    if [[ "$grow_fs" == true && "$FSTYPE" == xfs ]]; then
      ACTIONS+=("would run: xfs_growfs $MOUNT_POINT (to about $fs_target bytes)")
    elif [[ "$grow_fs" == true ]]; then
      ACTIONS+=("would run: resize2fs $DEVICE${resize_blocks:+ $resize_blocks} (to about $fs_target bytes)")
    fi
    PART_BYTES_AFTER=$target_part
  fi
  if [[ "$FSTYPE" == ext4 && "$grow_fs" == true ]] && ! has_cap_sys_resource; then
    PART_BYTES_AFTER=$PART_BYTES_BEFORE
    refuse "online ext4 resize of $DEVICE needs CAP_SYS_RESOURCE, which this process lacks (the kernel would answer 'Permission denied'); run it where the agent has full root capabilities"
  fi
  if [[ "$DRY_RUN" == true ]]; then
    log "dry run: ${ACTIONS[*]}"
    emit_result dry-run "dry run: nothing was changed"
    return 0
  fi

  if [[ "$grow_part" == true ]]; then
    grow_partition "$DISK" "$PART_NUM" || fail "growpart $DISK $PART_NUM failed; nothing was changed"
    refresh_partition "$DISK" "$PART_NUM" "$DEVICE" "$target_part" ||
      fail "partition $PART_NUM on $DISK was grown but the kernel still sees the old size; run partx -u $DISK"
    PART_BYTES_AFTER=$(block_bytes "$DEVICE")
  fi
  if [[ "$grow_fs" == true ]]; then
    resize_filesystem "$FSTYPE" "$DEVICE" "$MOUNT_POINT" "$resize_blocks" ||
      fail "$([[ $FSTYPE == xfs ]] && echo xfs_growfs || echo resize2fs) on $DEVICE failed after: ${ACTIONS[*]:-nothing}; the data is untouched, rerun after fixing the cause"
  fi

  DF_AFTER=$(df_size_bytes "$MOUNT_POINT")
  FS_BYTES_AFTER=$(fs_bytes "$FSTYPE" "$DEVICE" "$MOUNT_POINT")
  if [[ "$grow_fs" == true ]] && ((DF_AFTER <= DF_BEFORE)); then
    fail "df still shows $DF_AFTER bytes on $MOUNT_POINT after: ${ACTIONS[*]}"
  fi
  log "grown: df size $DF_BEFORE -> $DF_AFTER bytes"
  emit_result grown ''
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
