#!/usr/bin/env bash
# A first run without a server: the toolchain, a local Debian test host on 127.0.0.1:2222, and
# `pulumi up` on the dev stack against it. Re-running reuses the host while it is up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/toolchain.sh)"
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-state}
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-devpi-dev}
mkdir -p .pulumi-state
state=${DEVPI_TESTHOST_DIR:-/var/tmp/devpi-testhost}/dev
if [[ -f $state/env ]] && scripts/testhost/exec.sh dev true 2>/dev/null; then
    echo "reusing the running test host 'dev'" >&2
else
    scripts/testhost/up.sh dev 2222 >/dev/null
    # A fresh host has none of what an earlier demo's state records: start the stack over.
    if pulumi stack select dev 2>/dev/null; then pulumi stack rm --force --yes --preserve-config dev >&2; fi
fi
pulumi stack select --create dev >&2
pulumi up --yes --skip-preview
ca=$PWD/.pulumi-state/devpi-dev-ca.pem
pulumi stack output caCertificate >"$ca"
cat <<MSG

devpi is up: $(pulumi stack output url)
  index:   $(pulumi stack output pipIndexUrl)
  install: REQUESTS_CA_BUNDLE=$ca pip install --cert $ca --index-url $(pulumi stack output pipIndexUrl) six
           (REQUESTS_CA_BUNDLE too: when it or CURL_CA_BUNDLE is set, pip ignores --cert)
  login:   devpi use $(pulumi stack output url) && devpi login root   (password: pulumi config get rootPassword)
Remove the test host with: npm run demo:down
MSG
