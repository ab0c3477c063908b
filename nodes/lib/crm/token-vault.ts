/**
 * OAuth tokens at rest (DESIGN.md §6): AES-256-GCM under a key derived from the
 * credential secret, in a text form that names the format version and which key
 * sealed it, so the secret can be rotated and a wrong secret is told apart from
 * tampering:
 *
 *   v1:<kid>:<iv>:<tag>:<ciphertext>      (each part base64url)
 *
 * The ciphertext is bound to its connection id and provider (GCM additional data), so
 * a sealed row copied onto another connection does not open either.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from "node:crypto";
import { TributaryError } from "../db/errors";
import type { CrmTokens } from "./provider";

const VERSION = "v1";
// scrypt rather than a plain hash: TRIBUTARY_CREDENTIAL_SECRET may be a pass phrase a
// person chose. Derived once per vault; 16 MiB and ~50 ms.
const SCRYPT = { N: 1 << 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const SALT = "tributary/token-vault/v1";

/** Where sealed tokens live; StateStore implements it. */
export interface TokenStore {
  saveToken(connectionId: string, provider: string, sealed: string): Promise<void>;
  getToken(connectionId: string): Promise<{ provider: string; sealed: string } | undefined>;
  deleteToken(connectionId: string): Promise<boolean>;
  resealTokens(
    reseal: (row: { connectionId: string; provider: string; sealed: string }) => string | null,
  ): Promise<number>;
}

/**
 * The shape the providers read and write their tokens through (the same as
 * ProviderAuth in auth.ts, kept here so the vault does not depend on that file).
 */
export interface TokenAccess {
  load(): Promise<CrmTokens | undefined>;
  save(tokens: CrmTokens): Promise<void>;
}

export interface SealContext {
  connectionId: string;
  provider: string;
}

export type VaultErrorCode = "wrong-secret" | "tampered" | "malformed";

/** Never carries a token: only the connection id and what to do. */
export class TokenVaultError extends TributaryError {
  constructor(
    override readonly code: VaultErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = "TokenVaultError";
  }
}

interface Key {
  kid: string;
  key: Buffer;
}

function deriveKey(secret: string): Key {
  if (!secret) {
    throw new TributaryError(
      "no-secret",
      "no credential secret: set TRIBUTARY_CREDENTIAL_SECRET (or Node-RED's credentialSecret) to seal OAuth tokens",
    );
  }
  const key = scryptSync(secret, SALT, 32, SCRYPT);
  // The key id is a hash of the derived key: it tells which secret sealed a row
  // without revealing anything that helps to find the secret.
  const kid = createHash("sha256")
    .update("tributary/kid/")
    .update(key)
    .digest()
    .subarray(0, 6)
    .toString("base64url");
  return { kid, key };
}

function aad(context: SealContext): Buffer {
  return Buffer.from(`tributary-token\n${context.connectionId}\n${context.provider}`, "utf8");
}

function parseTokens(json: string): CrmTokens {
  const value = JSON.parse(json) as Partial<CrmTokens>;
  if (!value || typeof value.accessToken !== "string") throw new Error("no access token");
  return value as CrmTokens;
}

export class TokenVault {
  private readonly current: Key;

  /** `store` is needed by forConnection and rotate only. */
  constructor(
    secret: string,
    private readonly store?: TokenStore,
  ) {
    this.current = deriveKey(secret);
  }

  /** The id of the key this vault seals with (safe to show). */
  get keyId(): string {
    return this.current.kid;
  }

  seal(tokens: CrmTokens, context: SealContext): string {
    return sealWith(this.current, tokens, context);
  }

  /** Throws TokenVaultError: wrong-secret (with the fix), tampered, or malformed. */
  open(sealed: string, context: SealContext): CrmTokens {
    return openWith(this.current, sealed, context);
  }

  /** The key id a sealed text names, or undefined when it is not a sealed text. */
  static keyIdOf(sealed: string): string | undefined {
    const parts = sealed.split(":");
    return parts.length === 5 && parts[0] === VERSION ? parts[1] : undefined;
  }

  /**
   * Token access for one connection, backed by the store: what a provider's auth
   * loads before a call and saves after a refresh (rotated refresh tokens at once).
   */
  forConnection(connectionId: string, provider: string): TokenAccess {
    const store = this.requireStore();
    return {
      load: async () => {
        const row = await store.getToken(connectionId);
        if (!row) return undefined;
        return this.open(row.sealed, { connectionId, provider: row.provider });
      },
      save: async (tokens) => {
        await store.saveToken(
          connectionId,
          provider,
          this.seal(tokens, { connectionId, provider }),
        );
      },
    };
  }

  /** Wipes a connection's tokens; true when there were any. */
  async forget(connectionId: string): Promise<boolean> {
    return this.requireStore().deleteToken(connectionId);
  }

  /**
   * Re-seals every stored token from `oldSecret` to `newSecret` (by default this
   * vault's secret) in one transaction. Rows already under the new secret are left as
   * they are, so running it twice is harmless; a row that neither secret opens, or
   * that fails its integrity check, aborts the whole rotation and changes nothing.
   */
  async rotate(
    oldSecret: string,
    newSecret?: string,
  ): Promise<{ resealed: number; alreadyCurrent: number; keyId: string }> {
    const store = this.requireStore();
    const from = deriveKey(oldSecret);
    const to = newSecret === undefined ? this.current : deriveKey(newSecret);
    let alreadyCurrent = 0;
    const resealed = await store.resealTokens((row) => {
      const context = { connectionId: row.connectionId, provider: row.provider };
      const kid = TokenVault.keyIdOf(row.sealed);
      if (kid === to.kid) {
        openWith(to, row.sealed, context); // verifies it; throws if tampered
        alreadyCurrent++;
        return null;
      }
      if (kid !== from.kid) {
        throw new TokenVaultError(
          "wrong-secret",
          `the OAuth tokens of connection ${row.connectionId} were sealed with neither the old nor the new credential secret; ` +
            "nothing was changed: check the old secret, or delete that connection's tokens and Connect it again",
        );
      }
      return sealWith(to, openWith(from, row.sealed, context), context);
    });
    return { resealed, alreadyCurrent, keyId: to.kid };
  }

  private requireStore(): TokenStore {
    if (!this.store) throw new Error("TokenVault: no token store was given to the constructor");
    return this.store;
  }
}

const vaults = new WeakMap<TokenStore, Map<string, TokenVault>>();

/**
 * One vault per store and secret in the process: deriving the key costs ~50 ms, so
 * routes and nodes share it. Keyed by a hash of the secret, never the secret itself.
 */
export function vaultFor(secret: string, store: TokenStore): TokenVault {
  const id = createHash("sha256").update(secret).digest("base64url");
  let bySecret = vaults.get(store);
  if (!bySecret) {
    bySecret = new Map();
    vaults.set(store, bySecret);
  }
  let vault = bySecret.get(id);
  if (!vault) {
    vault = new TokenVault(secret, store);
    bySecret.set(id, vault);
  }
  return vault;
}

function sealWith(key: Key, tokens: CrmTokens, context: SealContext): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key.key, iv);
  cipher.setAAD(aad(context));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(tokens), "utf8"), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [
    VERSION,
    key.kid,
    iv.toString("base64url"),
    tag.toString("base64url"),
    ciphertext.toString("base64url"),
  ].join(":");
}

function openWith(key: Key, sealed: string, context: SealContext): CrmTokens {
  const parts = sealed.split(":");
  if (parts.length !== 5 || parts[0] !== VERSION) {
    throw new TokenVaultError(
      "malformed",
      `the stored OAuth tokens of connection ${context.connectionId} are not in a format this version reads ` +
        `(expected ${VERSION}); Connect the connection again`,
    );
  }
  const [, kid, iv, tag, ciphertext] = parts;
  if (kid !== key.kid) {
    throw new TokenVaultError(
      "wrong-secret",
      `the OAuth tokens of connection ${context.connectionId} were sealed with another credential secret ` +
        `(key ${kid}; the current secret is key ${key.kid}): the credential secret changed. ` +
        "Stop the runtime and run `tributary rotate-secret` with the old secret in TRIBUTARY_OLD_CREDENTIAL_SECRET " +
        "and the new one in TRIBUTARY_CREDENTIAL_SECRET, or Connect the connection again",
    );
  }
  let json: string;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.key, Buffer.from(iv, "base64url"));
    decipher.setAAD(aad(context));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    json = Buffer.concat([
      decipher.update(Buffer.from(ciphertext, "base64url")),
      decipher.final(),
    ]).toString("utf8");
  } catch {
    // GCM's tag check failed: altered bytes, or a row moved from another connection.
    throw new TokenVaultError(
      "tampered",
      `the stored OAuth tokens of connection ${context.connectionId} failed their integrity check ` +
        "(altered, or copied from another connection): Connect the connection again",
    );
  }
  try {
    return parseTokens(json);
  } catch {
    throw new TokenVaultError(
      "malformed",
      `the stored OAuth tokens of connection ${context.connectionId} are incomplete: Connect the connection again`,
    );
  }
}
