/**
 * The composition root of the stack-config program: the stack's `devpi:` config, validated and
 * turned into the Devpi component's arguments by one adapter (config/), builds one deployment.
 * Programs that make their own servers use `new Devpi(...)` the same way (see examples/).
 */
import { Devpi } from "./components/deployment/devpi";
import { fromStackConfig } from "./config";

const devpi = new Devpi("devpi", fromStackConfig());

/** The server's base URL. */
export const url = devpi.url;
/** pip's index URL for the client index (devpi:clientIndex). */
export const pipIndexUrl = devpi.pipIndexUrl;
export const pipConf = devpi.pipConf;
export const uvToml = devpi.uvToml;
/** ~/.pypirc without the password. */
export const pypirc = devpi.pypirc;
/** ~/.pypirc with the password (secret); only when devpi:clientIncludePassword is true. */
export const pypircWithPassword = devpi.pypircWithPassword;
export const devpiUse = devpi.devpiUse;
/** The private CA's certificate (self-signed mode): save it as ~/.config/devpi/ca.pem. */
export const caCertificate = devpi.caCertificate;
/** The served certificate: sha256, expiry (ISO 8601) and issuer. With acme, as of the last `pulumi up` that requested or checked it. */
export const certificateSha256 = devpi.certificateSha256;
export const certificateExpiry = devpi.certificateExpiry;
export const certificateIssuer = devpi.certificateIssuer;
export const serverVersions = devpi.serverVersions;
export const healthCheck = devpi.healthCheck;
export const backupCommand = devpi.backupCommand;
export const restoreCommand = devpi.restoreCommand;
/**
 * Per replica (empty without replicas): its URL, pip index URL and client config, so each
 * site's clients install from the nearest server. Uploads and user/index changes go to `url`.
 * Empty rather than undefined, so a stack without replicas shows no "Undefined value" warning.
 */
export const replicaClients = devpi.replicaClients;
/**
 * Per token in devpi:tokens (secret; empty without tokens): the token, the user it acts as and its
 * expiry. `pulumi stack output --show-secrets tokens` shows them; a CI runner uses one as its
 * user's password (~/.netrc, twine, `devpi login`). A `pulumi up` inside a token's renewal window
 * replaces it and revokes the old one.
 */
export const tokens = devpi.tokens;
/**
 * Per server (`primary`, then each replica's name): where node-exporter serves its metrics, on the
 * server's loopback (devpi:metricsAddress). Empty with devpi:metrics false.
 */
export const metricsEndpoints = devpi.metricsEndpoints;
/** Prometheus alert rules for those metrics (`pulumi stack output alertRules > devpi-alerts.yml`). */
export const alertRules = devpi.alertRules;
/** How to restore the newest off-host snapshot on a (fresh) server, with devpi:offsite. */
export const offsiteRestoreCommand = devpi.offsiteRestoreCommand;
