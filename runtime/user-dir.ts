/**
 * What the hosted runtime keeps in its user directory besides Node-RED's own files:
 * the credential secret and the admin password, each created once with mode 0600.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import bcrypt from "bcryptjs";

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

export class StartupError extends Error {}

export function ensureUserDir(dir: string): string {
  const resolved = path.resolve(dir);
  fs.mkdirSync(resolved, { recursive: true });
  // Node-RED's registry reads the user directory's package.json (its storage module
  // creates one; a headless run's in-memory storage does not).
  const pkg = path.join(resolved, "package.json");
  if (!fs.existsSync(pkg)) {
    fs.writeFileSync(
      pkg,
      JSON.stringify(
        { name: "tributary-user-dir", description: "Tributary user directory", private: true },
        null,
        2,
      ),
    );
  }
  return resolved;
}

function readOrCreateSecretFile(
  file: string,
  create: () => string,
): { value: string; created: boolean } {
  if (fs.existsSync(file)) return { value: fs.readFileSync(file, "utf8").trim(), created: false };
  const value = create();
  fs.writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return { value, created: true };
}

/**
 * TRIBUTARY_CREDENTIAL_SECRET, or (outside production) one generated once and kept in
 * the user directory. Always a string: Node-RED must never fall back to its own
 * handling, which can silently switch encryption off (NODE-RED.md §b).
 */
export function credentialSecret(userDir: string, env: NodeJS.ProcessEnv, log: Logger): string {
  const fromEnv = env.TRIBUTARY_CREDENTIAL_SECRET;
  if (fromEnv) return fromEnv;
  if (env.NODE_ENV === "production") {
    throw new StartupError(
      "TRIBUTARY_CREDENTIAL_SECRET is not set: in production the runtime needs it to encrypt credentials; " +
        "set it to a long random string (e.g. `openssl rand -hex 32`) and keep it with your backups",
    );
  }
  const file = path.join(userDir, ".credential-secret");
  const { value, created } = readOrCreateSecretFile(file, () => randomBytes(32).toString("hex"));
  log.warn(
    `${created ? "generated a credential secret" : "using the credential secret"} in ${file}; ` +
      "set TRIBUTARY_CREDENTIAL_SECRET in production (losing it makes stored credentials unreadable)",
  );
  return value;
}

/** The admin user's bcrypt hash: from TRIBUTARY_ADMIN_PASSWORD, or a password generated once. */
export function adminPasswordHash(userDir: string, env: NodeJS.ProcessEnv, log: Logger): string {
  const fromEnv = env.TRIBUTARY_ADMIN_PASSWORD;
  if (fromEnv) return bcrypt.hashSync(fromEnv, 10);
  const file = path.join(userDir, "admin-password.txt");
  const { value, created } = readOrCreateSecretFile(file, () =>
    randomBytes(12).toString("base64url"),
  );
  log.info(
    `${created ? "created the admin account" : "admin account"}: user "admin", password in ${file} ` +
      "(or set TRIBUTARY_ADMIN_PASSWORD)",
  );
  return bcrypt.hashSync(value, 10);
}
