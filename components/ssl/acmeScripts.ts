/**
 * Renders what `sslMode: acme` puts on the server: certbot (Debian's package) with its webroot
 * plugin, a temporary self-signed certificate so nginx can start before the first issuance, the
 * issuance script, the renewal script and cron entry, and the deploy hook that reloads nginx.
 *
 * Why webroot and not certbot's nginx plugin: the nginx plugin edits nginx's configuration
 * itself (and reads all of it to find the server block). This program owns the site file and
 * rewrites it whenever it differs from the rendered one, so the two would fight, and a second
 * `pulumi up` would no longer be a no-op. With webroot, certbot only writes challenge files into
 * a directory that the site (rendered here) serves under `/.well-known/acme-challenge/` on
 * `httpPort`; nginx's configuration stays exactly what `pulumi preview` shows.
 */
import { shellQuote, writeFileLines } from "../common/shell";
import { PUT_ROOT_FILE, renderRootOnlyDirLines } from "./sslFilesScript";

/** Fixed locations on the server. The certificate and key stay under certbot's own paths. */
export const ACME_PATHS = {
    /** certbot's name for the lineage: /etc/letsencrypt/live/devpi, /etc/letsencrypt/renewal/devpi.conf. */
    certName: "devpi",
    live: "/etc/letsencrypt/live/devpi",
    renewalConf: "/etc/letsencrypt/renewal/devpi.conf",
    log: "/var/log/letsencrypt/letsencrypt.log",
    /** certbot --webroot-path; nginx serves its .well-known/acme-challenge/ over HTTP. */
    webroot: "/var/lib/devpi-acme/webroot",
    /** The private ACME CA's PEM bundle (acmeCaBundle), if any. */
    caBundle: "/etc/letsencrypt/devpi-acme-ca.pem",
    /** Runs for every renewal by any `certbot renew` (ours or Debian's timer): nginx -t, reload. */
    deployHook: "/etc/letsencrypt/renewal-hooks/deploy/devpi-nginx-reload",
    renewScript: "/usr/local/sbin/devpi-acme-renew",
    cron: "/etc/cron.d/devpi-acme",
    renewLog: "/var/log/devpi-acme-renew.log",
} as const;

export interface AcmeClientSettings {
    /** Directory of the files nginx loads (sslDir): `acme.crt` and `acme.key`, symlinks into certbot's live directory once issued. */
    sslDir: string;
    /** The certificate's first name, used as the temporary certificate's subject. */
    domain: string;
    /** PEM bundle of a private ACME CA; empty for a public CA (the system trust store). */
    caBundlePem: string;
}

export interface AcmeIssueSettings {
    sslDir: string;
    /** Every name on the certificate, the domain first. */
    names: string[];
    email: string;
    directoryUrl: string;
    /** Whether {@link ACME_PATHS.caBundle} is installed (certbot must trust it). */
    caBundle: boolean;
    /** Request again when the certificate expires within this many days (certbot's own default is 30). */
    renewBeforeDays: number;
    /** nginx's HTTPS port, to see the new certificate served after the reload. */
    httpsPort: number;
}

const caEnv = (caBundle: boolean) => (caBundle ? `export REQUESTS_CA_BUNDLE=${shellQuote(ACME_PATHS.caBundle)}\n` : "");

/**
 * certbot's deploy hook: runs after each successful renewal of the devpi lineage. A
 * configuration that fails `nginx -t` is not reloaded (nginx keeps serving the previous
 * certificate) and the hook fails, which certbot logs.
 */
export function renderDeployHook(): string {
    return `#!/bin/sh
# Managed by Pulumi (devpi): reload nginx after certbot renewed the devpi certificate.
set -eu
case "\${RENEWED_LINEAGE:-}" in
  */live/${ACME_PATHS.certName}) ;;
  *) exit 0 ;;
esac
if ! out=$(nginx -t 2>&1); then
  echo "devpi deploy hook: nginx -t failed, nginx not reloaded and still serving the previous certificate:" >&2
  echo "$out" >&2
  exit 1
fi
if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
  nginx -s reload
fi
`;
}

/**
 * The renewal command cron runs (and the one to run by hand): `certbot renew` for the devpi
 * lineage with the private CA's bundle trusted. Extra arguments go to certbot, e.g.
 * `devpi-acme-renew --force-renewal --no-random-sleep-on-renew`.
 */
export function renderRenewScript(caBundle: boolean): string {
    return `#!/bin/bash
# Managed by Pulumi (devpi): renews the devpi certificate when due; certbot then runs
# ${ACME_PATHS.deployHook}.
set -euo pipefail
${caEnv(caBundle)}exec certbot renew --non-interactive --cert-name ${ACME_PATHS.certName} "$@"
`;
}

/**
 * /etc/cron.d/devpi-acme: twice a day, as Let's Encrypt asks. cron rather than certbot's
 * systemd timer, because cron runs the same way on a systemd server and on a host without an
 * init system; certbot itself only renews within 30 days of expiry.
 */
export function renderRenewCron(): string {
    return `# Managed by Pulumi (devpi): renew the devpi certificate (certbot renews only when due).
SHELL=/bin/bash
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
41 3,15 * * * root ${ACME_PATHS.renewScript} >>${ACME_PATHS.renewLog} 2>&1
`;
}

/**
 * Installs certbot (Debian's package), the webroot, the CA bundle, the deploy hook and the
 * renewal script, and gives nginx a certificate to start with: the issued one when certbot
 * already has it, else a temporary self-signed one made on the server (its key never leaves it).
 * sslDir is root:root 0700 like in the other modes ({@link renderRootOnlyDirLines}); in it,
 * `acme.crt` and `acme.key` are either links to certbot's live files (root-only too) or root's
 * 0400 files. Any other link there is removed, never followed.
 */
export function renderAcmeClientScript(s: AcmeClientSettings): string {
    const crt = shellQuote(`${s.sslDir}/acme.crt`);
    const key = shellQuote(`${s.sslDir}/acme.key`);
    const ca = s.caBundlePem.trim() ? `ca=$(${writeFileLines(ACME_PATHS.caBundle, "0644", "root:root", s.caBundlePem)})` : `rm -f ${shellQuote(ACME_PATHS.caBundle)}; ca=none`;
    return `if ! dpkg-query -W -f='\${Status}' certbot 2>/dev/null | grep -q 'ok installed'; then
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends certbot >&2
  echo "installed certbot"
fi
install -d -m 0755 ${shellQuote(ACME_PATHS.webroot)} ${shellQuote(`${ACME_PATHS.webroot}/.well-known`)} ${shellQuote(`${ACME_PATHS.webroot}/.well-known/acme-challenge`)}
install -d -m 0755 /etc/letsencrypt /etc/letsencrypt/renewal-hooks /etc/letsencrypt/renewal-hooks/deploy
${ca}
hook=$(${writeFileLines(ACME_PATHS.deployHook, "0755", "root:root", renderDeployHook())})
renew=$(${writeFileLines(ACME_PATHS.renewScript, "0755", "root:root", renderRenewScript(s.caBundlePem.trim() !== ""))})
${renderRootOnlyDirLines(s.sslDir)}${PUT_ROOT_FILE}live=${shellQuote(ACME_PATHS.live)}
# Only links to certbot's live files and root's own files stay; anything else is not nginx's certificate.
for pair in ${crt}:fullchain.pem ${key}:privkey.pem; do
  f=\${pair%:*}
  if [ -L "$f" ]; then
    [ "$(readlink "$f")" = "$live/\${pair##*:}" ] || { rm -f -- "$f"; note "removed the symbolic link at $f (not followed)"; }
  elif [ -e "$f" ] && [ ! -f "$f" ]; then
    fail "$f exists and is not a regular file"
  elif [ -f "$f" ] && [ "$(stat -c %u:%g:%a "$f")" != 0:0:400 ]; then
    chown -h root:root -- "$f"
    chmod 0400 -- "$f"
  fi
done
cert=present
if [ ! -e ${crt} ] || [ ! -e ${key} ]; then
  if [ -s "$live/fullchain.pem" ] && [ -s "$live/privkey.pem" ]; then
    ln -sfn "$live/fullchain.pem" ${crt}
    ln -sfn "$live/privkey.pem" ${key}
    cert="linked to $live"
  else
    # nginx needs some certificate to start the site whose port 80 answers the first challenge.
    # Made beside its destination (a root-only directory) and moved over whatever is there.
    tmpkey=$(mktemp ${shellQuote(`${s.sslDir}/.acme.key.XXXXXX`)})
    tmpcrt=$(mktemp ${shellQuote(`${s.sslDir}/.acme.crt.XXXXXX`)})
    trap 'rm -f -- "$tmpkey" "$tmpcrt"' EXIT
    (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \\
      -subj ${shellQuote(`/CN=${s.domain} (temporary, until the ACME CA issues)`)} -keyout "$tmpkey" -out "$tmpcrt" 2>/dev/null)
    put_root_file "$tmpkey" ${key} 0400 >/dev/null
    put_root_file "$tmpcrt" ${crt} 0400 >/dev/null
    cert="temporary self-signed"
  fi
fi
echo "certbot ready; CA bundle $ca, deploy hook $hook, renew script $renew, certificate $cert"
`;
}

/** Removes what {@link renderAcmeClientScript} installed; certbot's package and account stay. */
export function renderAcmeClientRemoveScript(s: { sslDir: string }): string {
    return `rm -f ${shellQuote(ACME_PATHS.deployHook)} ${shellQuote(ACME_PATHS.renewScript)} ${shellQuote(ACME_PATHS.caBundle)}
rm -f ${shellQuote(`${s.sslDir}/acme.crt`)} ${shellQuote(`${s.sslDir}/acme.key`)}
rm -rf ${shellQuote("/var/lib/devpi-acme")}
rmdir ${shellQuote(s.sslDir)} 2>/dev/null || true
echo "certbot setup removed"
`;
}

/**
 * Python that names the likeliest cause of a failed issuance from certbot's output and log:
 * the ACME server unreachable or untrusted, a rate limit, DNS, or port 80 not reachable.
 */
export const CLASSIFY_PY = `import re, sys
text = sys.stdin.read()
directory = sys.argv[1]
rules = [
    (r"rateLimited|too many (certificates|failed authorizations|new orders|registrations)", "rate limit: the CA refuses more certificates for these names for now (see README: Rate limits; test against Let's Encrypt staging)"),
    (r"Max retries exceeded|Failed to establish a new connection|Unable to connect to the ACME|Temporary failure in name resolution|CERTIFICATE_VERIFY_FAILED|certificate verify failed", "the ACME directory %s is unreachable or not trusted from the server (network, proxy, or devpi:acmeCaBundle)" % directory),
    (r"DNS problem|NXDOMAIN|no valid A records|SERVFAIL|Type: dns", "DNS: a name on the certificate does not resolve to this server for the CA"),
    (r"Timeout during connect|Connection refused|Type: connection|Fetching http://|Invalid response from|Type: unauthorized|connection reset", "port 80 unreachable: the CA could not fetch /.well-known/acme-challenge/ from this server over HTTP (firewall, port forwarding, or httpPort is not the port the CA uses)"),
]
for pattern, reason in rules:
    if re.search(pattern, text, re.I):
        print(reason)
        break
else:
    print("see certbot's output and log below")
`;

/**
 * Requests the certificate when the live one does not carry exactly the configured names, comes
 * from another directory, or expires within `renewBeforeDays`; otherwise requests nothing. On
 * success nginx is pointed at certbot's live files and reloaded (if `nginx -t` passes). On
 * failure the step fails naming the directory, the likeliest cause and the tail of certbot's log;
 * the certificate nginx serves stays as it was. Stdout: `sha256=`, `notAfter=`, `issuer=` lines.
 */
export function renderAcmeIssueScript(s: AcmeIssueSettings): string {
    const names = [...new Set(s.names)];
    const want = [...names].sort().join(",");
    const dir = shellQuote(s.directoryUrl);
    const domains = names.map((n) => `-d ${shellQuote(n)}`).join(" ");
    return `${caEnv(s.caBundle)}live=${shellQuote(ACME_PATHS.live)}
conf=${shellQuote(ACME_PATHS.renewalConf)}
want=${shellQuote(want)}
have=""
server=""
if [ -s "$live/cert.pem" ]; then
  have=$(openssl x509 -in "$live/cert.pem" -noout -ext subjectAltName | grep -o 'DNS:[^,]*' | sed 's/^DNS://' | sort -u | paste -sd, -)
fi
if [ -f "$conf" ]; then server=$(sed -n 's/^server *= *//p' "$conf"); fi
if [ "$have" = "$want" ] && [ "$server" = ${dir} ] && openssl x509 -in "$live/cert.pem" -noout -checkend ${s.renewBeforeDays * 86400} >/dev/null; then
  echo "certificate for $want from ${s.directoryUrl} is current; nothing requested" >&2
else
  echo "requesting a certificate for ${want} from ${s.directoryUrl} (have: \${have:-none})" >&2
  if ! out=$(certbot certonly --non-interactive --agree-tos --no-eff-email --email ${shellQuote(s.email)} \\
      --server ${dir} --cert-name ${ACME_PATHS.certName} --force-renewal \\
      --key-type ecdsa --elliptic-curve secp256r1 \\
      --webroot --webroot-path ${shellQuote(ACME_PATHS.webroot)} ${domains} 2>&1); then
    logtail=$(tail -n 40 ${shellQuote(ACME_PATHS.log)} 2>/dev/null || true)
    reason=$(printf '%s\\n%s\\n' "$out" "$logtail" | python3 -c ${shellQuote(CLASSIFY_PY)} ${dir})
    echo "certbot could not get a certificate for ${want} from the ACME directory ${s.directoryUrl}: $reason" >&2
    echo "nginx keeps serving the previous certificate." >&2
    echo "--- certbot's output" >&2
    printf '%s\\n' "$out" | tail -n 25 >&2
    echo "--- tail of ${ACME_PATHS.log}" >&2
    printf '%s\\n' "$logtail" >&2
    exit 1
  fi
fi
# Point nginx at certbot's live files (symlinks: renewals need no copy) and reload it.
crt=${shellQuote(`${s.sslDir}/acme.crt`)}
key=${shellQuote(`${s.sslDir}/acme.key`)}
if [ "$(readlink "$crt" || true)" != "$live/fullchain.pem" ] || [ "$(readlink "$key" || true)" != "$live/privkey.pem" ]; then
  ln -sfn "$live/fullchain.pem" "$crt.new" && mv -Tf "$crt.new" "$crt"
  ln -sfn "$live/privkey.pem" "$key.new" && mv -Tf "$key.new" "$key"
fi
if ! nginx -t >/dev/null 2>&1; then
  nginx -t >&2 || true
  echo "nginx rejects its configuration with the issued certificate; not reloaded" >&2
  exit 1
fi
if svc_running nginx; then nginx -s reload; else svc start nginx >&2 || nginx; fi
# nginx -s reload only signals the master; wait (at most 10 s) until new connections get the certificate.
want_fp=$(openssl x509 -in "$live/cert.pem" -noout -fingerprint -sha256)
for _ in $(seq 1 50); do
  got_fp=$(openssl s_client -connect 127.0.0.1:${s.httpsPort} -servername ${shellQuote(names[0])} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null || true)
  [ "$got_fp" != "$want_fp" ] || break
  sleep 0.2
done
openssl x509 -in "$live/cert.pem" -noout -fingerprint -sha256 | sed 's/^.*=//; s/://g; y/ABCDEF/abcdef/; s/^/sha256=/'
openssl x509 -in "$live/cert.pem" -noout -enddate | sed 's/^notAfter=/notAfter=/'
openssl x509 -in "$live/cert.pem" -noout -issuer -nameopt RFC2253 | sed 's/^issuer=/issuer=/'
`;
}

/**
 * Removes the certificate from certbot (its renewal configuration too, so no renewal job of
 * Debian's certbot timer or cron entry is left for it) and nginx's links to it.
 */
export function renderAcmeIssueRemoveScript(s: { sslDir: string }): string {
    return `if command -v certbot >/dev/null && [ -f ${shellQuote(ACME_PATHS.renewalConf)} ]; then
  certbot delete --non-interactive --cert-name ${ACME_PATHS.certName} >&2
fi
for f in ${shellQuote(`${s.sslDir}/acme.crt`)} ${shellQuote(`${s.sslDir}/acme.key`)}; do
  if [ -L "$f" ]; then rm -f "$f"; fi
done
echo "ACME certificate removed"
`;
}

/** Installs the renewal cron entry and makes sure cron runs. */
export function renderRenewCronScript(): string {
    return `c=$(${writeFileLines(ACME_PATHS.cron, "0644", "root:root", renderRenewCron())})
svc_enable cron
if ! svc_running cron; then svc start cron >&2; fi
echo "renewal schedule $c"
`;
}

/** Removes the renewal cron entry (and its log). */
export function renderRenewCronRemoveScript(): string {
    return `rm -f ${shellQuote(ACME_PATHS.cron)}
echo "renewal schedule removed"
`;
}

/** Parses the issuance step's stdout into the certificate's sha256, expiry (ISO 8601) and issuer. */
export function parseIssued(stdout: string): { sha256: string; notAfter: string; issuer: string } {
    const field = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(stdout)?.[1]?.trim() ?? "";
    const notAfter = field("notAfter");
    const t = Date.parse(notAfter);
    return { sha256: field("sha256"), notAfter: Number.isNaN(t) ? notAfter : new Date(t).toISOString(), issuer: field("issuer") };
}
