#!/usr/bin/env bash
# Installs the Debian packages the test suites need when any is missing (as root; run by
# scripts/test.sh, so `npm test` works on a fresh Debian machine by itself, as `npm run demo` does).
#   nginx, libnginx-mod-http-js, supervisor, shellcheck, python3-venv: renderers checked by the real tools
#   debootstrap, zstd, openssh-*, iproute2: the chroot test hosts; qemu-*, e2fsprogs: the VM test host
#   pebble (ACME on loopback), wrk (load), faketime (expiry cases), sslscan (TLS policy), openssl,
#   chromium (a real browser on the login page of a private index), prometheus (promtool and a real
#   Prometheus scraping the test hosts' metrics)
set -euo pipefail
packages=(nginx libnginx-mod-http-js supervisor shellcheck debootstrap openssl zstd python3-venv openssh-client
    openssh-server iproute2 qemu-system-x86 qemu-utils e2fsprogs pebble wrk faketime sslscan chromium prometheus)
need=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
((${#need[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
    echo "test-packages: missing Debian packages: ${need[*]}; run as root, or: apt-get install ${need[*]}" >&2
    exit 1
fi
echo "test-packages: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${need[@]}" >&2
# Debian's postinst starts nginx on port 80; the tests bring their own nginx configs and ports.
service nginx stop >/dev/null 2>&1 || true
# Nor Debian's Prometheus (port 9090, scraping localhost:9100): the tests start their own.
service prometheus stop >/dev/null 2>&1 || true
