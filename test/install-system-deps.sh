#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real, and checks the tools the machine image
# ships under pyenv (moto_server, cfn-lint, the AWS CLI v1), which no registry here provides.
# Run as root (CI and developer machines are root). Idempotent.
set -euo pipefail

packages=(shellcheck xfsprogs e2fsprogs cloud-guest-utils fdisk util-linux prometheus prometheus-alertmanager prometheus-node-exporter jq curl rsync attr acl)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

status=0
for tool in moto_server cfn-lint aws promtool prometheus prometheus-alertmanager prometheus-node-exporter shellcheck growpart xfs_growfs resize2fs sfdisk losetup rsync setfattr setfacl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "missing tool: $tool (moto_server, cfn-lint and aws come with this machine image under pyenv)" >&2
    status=1
  fi
done
exit "$status"
