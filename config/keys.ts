/** The keys under `devpi:` this program understands. */

/** Every key this program understands; anything else under `devpi:` is rejected. */
export const KNOWN_KEYS = [
    "host", "sshPort", "sshUser", "sshPrivateKey", "sshPrivateKeyFile", "hostKey", "insecureSkipHostKeyCheck",
    "domain", "httpPort", "httpsPort", "listenIpv6",
    "devpiHost", "devpiPort", "devpiServerVersion", "devpiWebVersion", "web",
    "serviceUser", "venvDir", "serverDir", "configDir", "secretFile",
    "backupDir", "backupSchedule", "backupKeep", "upgradeStrategy", "allowDowngrade",
    "mirrorCacheExpiry", "maxUploadMb", "restrictModify", "replication", "debug", "pythonPackageIndex", "upstreamCaBundle",
    "sslMode", "sslDir", "sslOwner", "extraDnsNames", "extraIpAddresses",
    "certValidityDays", "certRenewBeforeDays", "caValidityDays", "caRenewBeforeDays",
    "sslCertificate", "sslCertificateFile", "sslPrivateKey", "sslPrivateKeyFile", "sslCaCertificate", "sslCaCertificateFile",
    "acmeEmail", "acmeDirectoryUrl", "acmeCaBundle", "acmeCaBundleFile",
    "rootPassword", "users", "indexes", "clientIndex", "clientIncludePassword", "replicas",
] as const;

/** Keys of one `devpi:replicas` entry. */
export const REPLICA_KEYS = [
    "name", "host", "sshPort", "sshUser", "sshPrivateKey", "sshPrivateKeyFile", "hostKey",
    "domain", "extraDnsNames", "extraIpAddresses", "httpPort", "httpsPort", "devpiPort",
    "sslCertificate", "sslCertificateFile", "sslPrivateKey", "sslPrivateKeyFile",
] as const;
