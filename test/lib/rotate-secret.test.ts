/**
 * `tributary rotate-secret` as an operator runs it (the CLI process, secrets in the
 * environment) on a user directory holding sealed OAuth tokens and a flows_cred.json.
 * Afterwards the new secret opens both — flows_cred.json checked with Node-RED's own
 * credentials module — and the old one opens neither; a wrong old secret changes
 * nothing.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { StateStore } from "../../nodes/lib/state-store";
import { TokenVault } from "../../nodes/lib/crm/token-vault";
import { encryptNodeRed } from "../../runtime/rotate-secret";

const load = createRequire(__filename);
const cli = path.resolve(__dirname, "..", "..", "..", "bin", "tributary.js");
const OLD = "the-old-credential-secret";
const NEW = "the-new-credential-secret";
const NODE_CREDS = { conn1: { clientId: "cid", clientSecret: "client-secret-value" } };

interface NodeRedCredentials {
  init(runtime: object): void;
  load(credentials: object): Promise<void>;
  get(id: string): Record<string, string> | undefined;
}

/** What Node-RED would read from flows_cred.json with `credentialSecret: secret`. */
async function nodeRedReads(file: string, secret: string): Promise<unknown> {
  const credentials = load("@node-red/runtime/lib/nodes/credentials") as NodeRedCredentials;
  const quiet = () => undefined;
  credentials.init({
    log: { debug: quiet, warn: quiet, info: quiet, _: (k: string) => k },
    settings: {
      get: (key: string) => (key === "credentialSecret" ? secret : undefined),
      set: () => Promise.resolve(),
    },
  });
  await credentials.load(JSON.parse(fs.readFileSync(file, "utf8")) as object);
  return credentials.get("conn1");
}

function run(env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, "rotate-secret"],
      { env: { PATH: process.env.PATH, ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("tributary rotate-secret", () => {
  let dir: string;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-rotate-"));
    const store = await StateStore.open({ file: path.join(dir, "tributary-state.sqlite") });
    const vault = new TokenVault(OLD, store);
    await vault
      .forConnection("conn1", "salesforce")
      .save({ accessToken: "AT-one", refreshToken: "RT-one" });
    await vault
      .forConnection("conn2", "hubspot")
      .save({ accessToken: "AT-two", refreshToken: "RT-two" });
    await store.close();
    fs.writeFileSync(
      path.join(dir, "flows_cred.json"),
      JSON.stringify(encryptNodeRed(OLD, NODE_CREDS)),
    );
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("re-encrypts the OAuth tokens and Node-RED's credentials under the new secret", async () => {
    const credFile = path.join(dir, "flows_cred.json");
    assert.deepEqual(
      await nodeRedReads(credFile, OLD),
      NODE_CREDS.conn1,
      "fixture readable before",
    );

    const result = await run({
      TRIBUTARY_USER_DIR: dir,
      TRIBUTARY_OLD_CREDENTIAL_SECRET: OLD,
      TRIBUTARY_CREDENTIAL_SECRET: NEW,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /2 re-sealed/);
    assert.match(result.stdout, /flows_cred\.json: re-encrypted/);
    assert.ok(!result.stdout.includes(OLD) && !result.stdout.includes(NEW));

    assert.deepEqual(await nodeRedReads(credFile, NEW), NODE_CREDS.conn1);
    await assert.rejects(() => nodeRedReads(credFile, OLD), /decrypt/);

    const store = await StateStore.open({ file: path.join(dir, "tributary-state.sqlite") });
    try {
      const fresh = new TokenVault(NEW, store);
      assert.deepEqual(await fresh.forConnection("conn1", "salesforce").load(), {
        accessToken: "AT-one",
        refreshToken: "RT-one",
      });
      assert.equal((await fresh.forConnection("conn2", "hubspot").load())?.refreshToken, "RT-two");
      await assert.rejects(
        () => new TokenVault(OLD, store).forConnection("conn1", "salesforce").load(),
        /credential secret changed/,
      );
    } finally {
      await store.close();
    }

    // A second run finds everything current and changes nothing.
    const again = await run({
      TRIBUTARY_USER_DIR: dir,
      TRIBUTARY_OLD_CREDENTIAL_SECRET: OLD,
      TRIBUTARY_CREDENTIAL_SECRET: NEW,
    });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /0 re-sealed, 2 already under the new secret/);
    assert.match(again.stdout, /already under the new secret/);
  });

  it("with a wrong old secret, exits 1 saying so and changes nothing", async () => {
    const credFile = path.join(dir, "flows_cred.json");
    const credBefore = fs.readFileSync(credFile, "utf8");
    const result = await run({
      TRIBUTARY_USER_DIR: dir,
      TRIBUTARY_OLD_CREDENTIAL_SECRET: "not-the-old-one",
      TRIBUTARY_CREDENTIAL_SECRET: NEW,
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /nothing was changed/);
    assert.ok(!result.stderr.includes("not-the-old-one"));
    assert.equal(fs.readFileSync(credFile, "utf8"), credBefore);
    const store = await StateStore.open({ file: path.join(dir, "tributary-state.sqlite") });
    try {
      assert.equal(
        (await new TokenVault(OLD, store).forConnection("conn1", "salesforce").load())?.accessToken,
        "AT-one",
      );
    } finally {
      await store.close();
    }
  });

  it("refuses to run without the new secret", async () => {
    const result = await run({ TRIBUTARY_USER_DIR: dir, TRIBUTARY_OLD_CREDENTIAL_SECRET: OLD });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /TRIBUTARY_CREDENTIAL_SECRET/);
  });
});
