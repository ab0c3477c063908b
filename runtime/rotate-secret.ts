/**
 * `tributary rotate-secret`: moves everything sealed with the credential secret to a
 * new one, with the runtime stopped:
 *
 * 1. the OAuth tokens in the state store (TokenVault.rotate, one transaction);
 * 2. Node-RED's own credentials file, <userDir>/flows_cred.json. Node-RED migrates
 *    that file only away from a key it generated itself; when `credentialSecret`
 *    changes from one string to another it cannot decrypt the file, logs "Failed to
 *    decrypt credentials", starts with no credentials at all, and the next deploy
 *    overwrites the file (NODE-RED.md §b; @node-red/runtime credentials.js). So this
 *    command re-encrypts it the way Node-RED does (aes-256-ctr, key sha256(secret),
 *    {"$": hex(iv) + base64(ciphertext)}).
 *
 * Both are checked before either is written: a wrong old secret changes nothing.
 * Secrets come from the environment, never from argv (visible in `ps` and history).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { StateStore } from "../nodes/lib/state-store";
import { TokenVault } from "../nodes/lib/crm/token-vault";
import { StartupError } from "./user-dir";

export interface RotateOptions {
  userDir: string;
  env: NodeJS.ProcessEnv;
  out?: (line: string) => void;
}

type CredFile = { $: string };

function nodeRedKey(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}

/** Node-RED's credentials decryption; undefined when the key does not fit. */
function decryptNodeRed(secret: string, file: CredFile): unknown {
  try {
    const iv = Buffer.from(file.$.substring(0, 32), "hex");
    const decipher = createDecipheriv("aes-256-ctr", nodeRedKey(secret), iv);
    const text = decipher.update(file.$.substring(32), "base64", "utf8") + decipher.final("utf8");
    // CTR has no tag: a wrong key gives garbage, which is not JSON.
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function encryptNodeRed(secret: string, credentials: unknown): CredFile {
  const iv = randomBytes(16);
  const cipher = createCipheriv("aes-256-ctr", nodeRedKey(secret), iv);
  return {
    $:
      iv.toString("hex") +
      cipher.update(JSON.stringify(credentials), "utf8", "base64") +
      cipher.final("base64"),
  };
}

export async function rotateSecret(options: RotateOptions): Promise<number> {
  const { userDir, env } = options;
  const out = options.out ?? ((line: string) => console.log(line));
  const newSecret = env.TRIBUTARY_CREDENTIAL_SECRET;
  if (!newSecret)
    throw new StartupError(
      "rotate-secret needs the new secret in TRIBUTARY_CREDENTIAL_SECRET and the old one in TRIBUTARY_OLD_CREDENTIAL_SECRET",
    );
  const generated = path.join(userDir, ".credential-secret");
  let oldSecret = env.TRIBUTARY_OLD_CREDENTIAL_SECRET;
  if (!oldSecret && fs.existsSync(generated)) {
    // Moving from the secret the runtime generated to one you set.
    oldSecret = fs.readFileSync(generated, "utf8").trim();
    out(`old secret: the generated one in ${generated}`);
  }
  if (!oldSecret)
    throw new StartupError(
      "rotate-secret needs the old secret in TRIBUTARY_OLD_CREDENTIAL_SECRET (or the generated <userDir>/.credential-secret)",
    );
  if (oldSecret === newSecret)
    throw new StartupError("the old and new secrets are the same: nothing to rotate");

  // 1. Check Node-RED's credentials file before changing anything.
  const credFile = path.join(userDir, "flows_cred.json");
  let credPlan: "none" | "plain" | "current" | { credentials: unknown } = "none";
  if (fs.existsSync(credFile)) {
    const parsed = JSON.parse(fs.readFileSync(credFile, "utf8")) as Partial<CredFile>;
    if (typeof parsed.$ !== "string") credPlan = "plain";
    else {
      const credentials = decryptNodeRed(oldSecret, parsed as CredFile);
      if (credentials !== undefined) credPlan = { credentials };
      else if (decryptNodeRed(newSecret, parsed as CredFile) !== undefined) credPlan = "current";
      else
        throw new StartupError(
          `${credFile} opens with neither the old nor the new secret: nothing was changed; check TRIBUTARY_OLD_CREDENTIAL_SECRET`,
        );
    }
  }

  // 2. The OAuth tokens, in one transaction (all or nothing).
  const url = env.TRIBUTARY_STATE_URL;
  const store = await StateStore.open(
    url ? { url } : { file: path.join(userDir, "tributary-state.sqlite") },
  );
  let tokens;
  try {
    tokens = await new TokenVault(newSecret, store).rotate(oldSecret);
  } catch (err) {
    throw new StartupError(`${(err as Error).message}`);
  } finally {
    await store.close();
  }
  out(
    `OAuth tokens in ${store.location}: ${tokens.resealed} re-sealed` +
      (tokens.alreadyCurrent ? `, ${tokens.alreadyCurrent} already under the new secret` : "") +
      ` (key ${tokens.keyId})`,
  );

  // 3. Node-RED's credentials, written atomically.
  if (typeof credPlan === "object") {
    const tmp = `${credFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(encryptNodeRed(newSecret, credPlan.credentials)), {
      mode: 0o600,
    });
    fs.renameSync(tmp, credFile);
    out(`Node-RED credentials ${credFile}: re-encrypted`);
  } else if (credPlan === "current")
    out(`Node-RED credentials ${credFile}: already under the new secret`);
  else if (credPlan === "plain") out(`Node-RED credentials ${credFile}: not encrypted, left as is`);
  else out("Node-RED credentials: no flows_cred.json in the user directory");

  if (fs.existsSync(generated) && fs.readFileSync(generated, "utf8").trim() === oldSecret)
    out(
      `note: ${generated} still holds the old secret; keep TRIBUTARY_CREDENTIAL_SECRET set, or delete that file`,
    );
  out("done: start the runtime with the new TRIBUTARY_CREDENTIAL_SECRET");
  return 0;
}
