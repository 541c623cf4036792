#!/usr/bin/env bash
# A first run without a server: the toolchain, a local Debian test host on 127.0.0.1:2222, and
# `pulumi up` on the dev stack against it. Re-running reuses the host while it is up.
#
#   DEVPI_TESTHOST_RELEASE=trixie|bookworm   Debian release of the test host (default: trixie)
#   DEVPI_TESTHOST_KIND=chroot|vm            chroot (seconds to start) or a QEMU VM with systemd as PID 1
#
# As root it installs the Debian packages the test host needs when they are missing. Each phase
# prints one line; everything else goes to .demo.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kind=${DEVPI_TESTHOST_KIND:-chroot}
release=${DEVPI_TESTHOST_RELEASE:-trixie}
export DEVPI_TESTHOST_KIND=$kind DEVPI_TESTHOST_RELEASE=$release
logfile=$PWD/.demo.log
: >"$logfile"
started=$SECONDS

phase() { printf '%-40s' "$1..." >&2; }
done_() { printf ' %s (%ss)\n' "${1:-done}" "$((SECONDS - phase_start))" >&2; }
fail() {
    printf ' FAILED\n\n' >&2
    tail -n 25 "$logfile" >&2
    printf '\nFull log: %s\n' "$logfile" >&2
    exit 1
}
run() { "$@" >>"$logfile" 2>&1 || fail; }

case $kind in
    chroot) need_cmds=(debootstrap:debootstrap zstd:zstd ssh:openssh-client ssh-keygen:openssh-client ss:iproute2 flock:util-linux) ;;
    vm) need_cmds=(debootstrap:debootstrap zstd:zstd ssh:openssh-client ssh-keygen:openssh-client ss:iproute2 flock:util-linux
        qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils mkfs.ext4:e2fsprogs) ;;
    *) echo "DEVPI_TESTHOST_KIND='$kind' is not a kind of test host: use chroot or vm" >&2; exit 2 ;;
esac
missing=()
for pair in "${need_cmds[@]}"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    phase_start=$SECONDS
    phase "installing ${missing[*]}"
    [[ $(id -u) -eq 0 ]] || { printf '\n' >&2; echo "run as root, or install them first: apt-get install ${missing[*]}" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -q
    run apt-get install -y -q --no-install-recommends "${missing[@]}"
    done_
fi

phase_start=$SECONDS
phase "pulumi toolchain"
toolchain=$(scripts/toolchain.sh 2>>"$logfile") || fail
eval "$toolchain"
done_ "$(pulumi version)"

export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-state}
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-devpi-dev}
mkdir -p .pulumi-state
state=${DEVPI_TESTHOST_DIR:-/var/tmp/devpi-testhost}/dev
phase_start=$SECONDS
phase "test host 'dev' ($release, $kind)"
if [[ -f $state/env && "$(cat "$state/kind" "$state/release" 2>/dev/null | paste -sd' ')" == "$kind $release" ]] &&
    scripts/testhost/exec.sh dev true >>"$logfile" 2>&1; then
    done_ "reused"
else
    run scripts/testhost/up.sh dev 2222 18080 18443
    # A fresh host has none of what an earlier demo's state records: start the stack over.
    if pulumi stack select dev >>"$logfile" 2>&1; then run pulumi stack rm --force --yes --preserve-config dev; fi
    done_ "127.0.0.1:2222"
fi

phase_start=$SECONDS
phase "pulumi up (stack dev)"
run pulumi stack select --create dev
# devpi:hostKey is required: pin the test host's key (a host made anew has a new one).
host_key=$(. "$state/env" && printf %s "$TESTHOST_HOST_KEY")
run pulumi config set hostKey "$host_key"
run pulumi up --yes --skip-preview --color never
done_ "$(grep -Eo '[0-9]+ (created|updated|unchanged)' "$logfile" | paste -sd, - | sed 's/,/, /g')"

ca=$PWD/.pulumi-state/devpi-dev-ca.pem
pulumi stack output caCertificate >"$ca"
cat <<MSG

devpi is up in $((SECONDS - started))s: $(pulumi stack output url)   (log: $logfile)
  index:   $(pulumi stack output pipIndexUrl)
  install: REQUESTS_CA_BUNDLE=$ca pip install --cert $ca --index-url $(pulumi stack output pipIndexUrl) six
           (REQUESTS_CA_BUNDLE too: when it or CURL_CA_BUNDLE is set, pip ignores --cert)
  login:   devpi use $(pulumi stack output url) && devpi login root   (password: pulumi config get rootPassword)
Remove the test host with: npm run demo:down
MSG
