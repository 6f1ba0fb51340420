# shellcheck shell=bash
# lib/service-health.sh: is the StemeDB service healthy, and waiting until it is; shared by the
# scripts that start or restart it (emergency-cleanup.sh, migrate-data-volume.sh, and through
# lib/config-edit.sh's restart, wal-cleanup.sh and storage-settings.sh).
#
# Included like lib/common.sh (one `source` line with the inline marker, after lib/common.sh,
# whose `log` it uses). It only defines functions. They read the including script's
#   HEALTH_URL  the health endpoint (http, on localhost)   SERVICE  the systemd unit

# One health probe with a timeout of $1 s; success on an HTTP 2xx. --noproxy: the URL is always
# local.
health_once() {
  local code
  code=$(curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' --max-time "$1" -- "$HEALTH_URL" 2>/dev/null) || true
  [[ $code =~ ^2[0-9][0-9]$ ]]
}

# Waits up to $1 s for health (probes of at most 5 s, a quarter second apart). Gives up early,
# saying so on stderr, when the unit is failed or inactive: it will not become healthy by itself.
wait_healthy() {
  local deadline=$((SECONDS + $1)) state per_try
  while :; do
    per_try=$((deadline - SECONDS))
    ((per_try > 5)) && per_try=5
    ((per_try < 1)) && per_try=1
    if health_once "$per_try"; then return 0; fi
    state=$(systemctl is-active "$SERVICE" 2>/dev/null) || true
    if [[ $state == failed || $state == inactive ]]; then
      log "unit $SERVICE is $state"
      return 1
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
}
