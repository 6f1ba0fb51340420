# shellcheck shell=bash disable=SC2034 # BACKUP_NAME and BACKUP_PROBLEM are read by the including script
# lib/file-backup.sh: a dated backup of a small system file next to itself, made without a race;
# shared by the scripts that rewrite one (the StemeDB config: lib/config-edit.sh for wal-cleanup.sh
# and storage-settings.sh; the fstab: migrate-data-volume.sh).
#
# Included like lib/common.sh (one `source` line with the inline marker, after lib/common.sh,
# whose `log` it uses). It only defines functions.

# link_backup FILE COPY: copies FILE to COPY (a path in a private directory of this run on FILE's
# filesystem), checks the copy, and links it to the first free name FILE.bak-<UTC stamp>[-N]
# (N up to 100). ln -T (link(2)) fails when the name exists in any form, a symlink included, and
# never follows one, so no check-then-create race is left. Sets BACKUP_NAME and returns 0; or sets
# BACKUP_PROBLEM (why, naming the file) and returns 1, having changed nothing but COPY.
link_backup() {
  local file=$1 copy=$2 stamp name i
  BACKUP_NAME='' BACKUP_PROBLEM=''
  if ! cp -p -- "$file" "$copy" || ! cmp -s -- "$file" "$copy"; then
    BACKUP_PROBLEM="could not back up $file (is the root disk full?)"
    return 1
  fi
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  for ((i = 1; i <= 100; i++)); do
    name="$file.bak-$stamp"
    ((i > 1)) && name+="-$i"
    if ln -T -- "$copy" "$name" 2>/dev/null; then
      BACKUP_NAME=$name
      log "backed up $file to $name"
      return 0
    fi
    if [[ -L $name ]]; then
      log "not using $name as the backup: a symlink (to $(readlink -- "$name")) is already there"
    elif [[ -e $name ]]; then
      log "not using $name as the backup: it already exists"
    else
      BACKUP_PROBLEM="could not create the backup $name (is the root disk full?)"
      return 1
    fi
  done
  BACKUP_PROBLEM="could not back up $file: 100 backup names for $stamp are taken"
  return 1
}
