/**
 * OAuth tokens at rest, on a real state store (temporary SQLite file): what a user
 * relies on is that the file never holds a token in clear, that a changed secret says
 * how to fix it, that tampering is caught, and that rotation moves every token.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { StateStore } from "../../nodes/lib/state-store";
import { TokenVault, TokenVaultError } from "../../nodes/lib/crm/token-vault";
import type { CrmTokens } from "../../nodes/lib/crm/provider";

const OLD = "old-secret-0123456789";
const NEW = "new-secret-9876543210";

function tokens(n: number): CrmTokens {
  return {
    accessToken: `00Dxx0000000${n}!AR8AQAccessTokenValue${n}`,
    refreshToken: `5Aep861RefreshTokenValue${n}`,
    expiresAt: 1_900_000_000_000 + n,
    instanceUrl: "https://example.my.salesforce.com",
  };
}

describe("token vault", () => {
  let dir: string;
  let file: string;
  let store: StateStore;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-vault-"));
    file = path.join(dir, "state.sqlite");
    store = await StateStore.open({ file });
  });

  beforeEach(async () => {
    for (const t of await store.listTokens()) await store.deleteToken(t.connectionId);
  });

  after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("saves and loads a connection's tokens through the store", async () => {
    const vault = new TokenVault(OLD, store);
    const auth = vault.forConnection("conn1", "salesforce");
    assert.equal(await auth.load(), undefined);
    await auth.save(tokens(1));
    assert.deepEqual(await auth.load(), tokens(1));
    // A new process (new vault, same secret) reads them.
    assert.deepEqual(
      await new TokenVault(OLD, store).forConnection("conn1", "salesforce").load(),
      tokens(1),
    );
  });

  it("keeps no token text in the sealed row nor in the database file", async () => {
    const vault = new TokenVault(OLD, store);
    await vault.forConnection("conn1", "hubspot").save(tokens(7));
    const row = await store.getToken("conn1");
    assert.ok(row);
    assert.match(row.sealed, /^v1:[A-Za-z0-9_-]{8}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/);
    for (const secret of [
      tokens(7).accessToken,
      tokens(7).refreshToken!,
      "AccessTokenValue",
      "RefreshTokenValue",
    ]) {
      assert.ok(!row.sealed.includes(secret), `sealed text contains ${secret}`);
    }
    // The bytes on disk (database and WAL) hold neither token.
    await store.knex.raw("pragma wal_checkpoint(TRUNCATE)");
    const bytes = Buffer.concat(
      fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f))),
    ).toString("latin1");
    assert.ok(bytes.includes(row.sealed), "the sealed row is in the file");
    assert.ok(!bytes.includes("AccessTokenValue7"));
    assert.ok(!bytes.includes("RefreshTokenValue7"));
  });

  it("seals the same tokens differently each time (fresh IV)", () => {
    const vault = new TokenVault(OLD);
    const ctx = { connectionId: "c", provider: "zoho" };
    assert.notEqual(vault.seal(tokens(1), ctx), vault.seal(tokens(1), ctx));
  });

  it("detects tampering: a changed byte, or a row copied onto another connection", async () => {
    const vault = new TokenVault(OLD, store);
    const ctx = { connectionId: "conn1", provider: "salesforce" };
    const sealed = vault.seal(tokens(1), ctx);
    const parts = sealed.split(":");
    const ct = Buffer.from(parts[4], "base64url");
    ct[3] ^= 0x01;
    parts[4] = ct.toString("base64url");
    assert.throws(
      () => vault.open(parts.join(":"), ctx),
      (err: TokenVaultError) =>
        err.code === "tampered" && /integrity check/.test(err.message) && /conn1/.test(err.message),
    );
    assert.throws(
      () => vault.open(sealed, { connectionId: "conn2", provider: "salesforce" }),
      (err: TokenVaultError) => err.code === "tampered",
    );
    assert.throws(
      () => vault.open("not sealed", ctx),
      (err: TokenVaultError) => err.code === "malformed",
    );
    assert.deepEqual(vault.open(sealed, ctx), tokens(1));
  });

  it("with another secret, says the secret changed and how to fix it, never the token", async () => {
    await new TokenVault(OLD, store).forConnection("conn1", "salesforce").save(tokens(1));
    const other = new TokenVault(NEW, store);
    await assert.rejects(
      () => other.forConnection("conn1", "salesforce").load(),
      (err: Error) => {
        assert.ok(err instanceof TokenVaultError);
        assert.equal(err.code, "wrong-secret");
        assert.match(err.message, /credential secret changed/);
        assert.match(err.message, /tributary rotate-secret/);
        assert.match(err.message, /TRIBUTARY_OLD_CREDENTIAL_SECRET/);
        assert.ok(!err.message.includes("AccessTokenValue"));
        assert.ok(!err.message.includes(OLD) && !err.message.includes(NEW));
        return true;
      },
    );
  });

  it("rotate re-seals every token; afterwards only the new secret opens them", async () => {
    const old = new TokenVault(OLD, store);
    const providers = ["salesforce", "hubspot", "pipedrive", "zoho"];
    for (let i = 0; i < providers.length; i++)
      await old.forConnection(`conn${i}`, providers[i]).save(tokens(i));
    const before = new Map((await store.listTokens()).map((t) => [t.connectionId, t.sealed]));

    const vault = new TokenVault(NEW, store);
    const result = await vault.rotate(OLD);
    assert.equal(result.resealed, 4);
    assert.equal(result.keyId, vault.keyId);

    for (let i = 0; i < providers.length; i++) {
      const row = await store.getToken(`conn${i}`);
      assert.notEqual(row!.sealed, before.get(`conn${i}`));
      assert.equal(TokenVault.keyIdOf(row!.sealed), vault.keyId);
      assert.deepEqual(await vault.forConnection(`conn${i}`, providers[i]).load(), tokens(i));
      await assert.rejects(
        () => old.forConnection(`conn${i}`, providers[i]).load(),
        (err: TokenVaultError) => err.code === "wrong-secret",
      );
    }
    // Running it again changes nothing and says so.
    assert.deepEqual(await vault.rotate(OLD), {
      resealed: 0,
      alreadyCurrent: 4,
      keyId: vault.keyId,
    });
  });

  it("rotate with a wrong old secret changes nothing", async () => {
    const old = new TokenVault(OLD, store);
    await old.forConnection("a", "zoho").save(tokens(1));
    await old.forConnection("b", "zoho").save(tokens(2));
    const before = await store.listTokens();
    await assert.rejects(
      () => new TokenVault(NEW, store).rotate("not-the-old-secret"),
      (err: TokenVaultError) =>
        err.code === "wrong-secret" && /nothing was changed/.test(err.message),
    );
    assert.deepEqual(await store.listTokens(), before);
    assert.deepEqual(await old.forConnection("b", "zoho").load(), tokens(2));
  });
});
