/**
 * Errors a user can act on: each names what is wrong and how to fix it, and never
 * carries a password (driver messages are scrubbed of the configured secret).
 */
import type { ErrorCode } from "./dialect";

export class TributaryError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "TributaryError";
  }
}

const FIXES: Record<ErrorCode, string> = {
  refused:
    "the server refused the connection: check host and port, that the server is running, and firewalls",
  "host-not-found": "the host name could not be resolved: check the host field",
  "auth-failed": "authentication failed: check user and password in the connection's credentials",
  "database-not-found": "the database does not exist: check the database field",
  timeout: "no answer within the connect timeout: check host, port and firewalls",
  ssl: "the SSL/TLS handshake failed: turn SSL on or off to match the server",
  "driver-missing": "the database driver is not installed: reinstall node-red-contrib-tributary",
};

export function connectionError(
  code: ErrorCode,
  where: string,
  detail: string,
  secrets: string[],
): TributaryError {
  return new TributaryError(code, `${where}: ${FIXES[code]} (${scrub(detail, secrets)})`);
}

export function scrub(text: string, secrets: string[]): string {
  let out = text;
  for (const secret of secrets)
    if (secret && secret.length >= 3) out = out.split(secret).join("***");
  return out;
}
