/**
 * The Salesforce provider through the real jsforce against test/fakes/salesforce.ts:
 * the three logins, what "Test connection" shows, keyset reads that neither lose nor
 * repeat records sharing a SystemModstamp, nextRecordsUrl paging, per-record upsert
 * outcomes, Bulk API 2.0 above the thresholds, one session renewal per failed call
 * (never a loop), rotated refresh tokens persisted, limits, and secrets kept out of
 * every error.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { memoryAuth } from "../../nodes/lib/crm/auth";
import { parseCrmSettings } from "../../nodes/lib/crm/index";
import type { CrmPosition, CrmSettings } from "../../nodes/lib/crm/provider";
import {
  buildReadSoql,
  createSalesforce,
  type SalesforceOptions,
  type SalesforceProvider,
} from "../../nodes/lib/crm/salesforce";
import type { SyncRecord } from "../../nodes/lib/types";
import { FakeSalesforce, sfNow } from "../fakes/salesforce";

function settings(fake: FakeSalesforce, over: Partial<CrmSettings> = {}): CrmSettings {
  return {
    provider: "salesforce",
    authType: "password",
    baseUrl: fake.url,
    clientId: "",
    clientSecret: "",
    token: "",
    username: fake.username,
    password: fake.password,
    securityToken: fake.securityToken,
    privateKey: "",
    maxConcurrency: 4,
    ...over,
  };
}

const FAST: SalesforceOptions = { retryBaseMs: 5, bulkPollIntervalMs: 5, bulkQueryThreshold: 0 };

/** Reads an object to the end the way the crm-source does: position = last record read. */
async function readAll(
  sf: SalesforceProvider,
  mode: "full" | "incremental",
  limit: number,
  fields = ["LastName", "External_Id__c"],
  after: CrmPosition | null = null,
): Promise<{ records: SyncRecord[]; calls: number; last: CrmPosition | null }> {
  const records: SyncRecord[] = [];
  let position = after;
  let calls = 0;
  for (;;) {
    const batch = await sf.read({ object: "Contact", fields, mode, after: position, limit });
    calls++;
    if (batch.length === 0) break;
    assert.ok(batch.length <= limit, `a read returned ${batch.length} records for limit ${limit}`);
    records.push(...batch);
    const lastRec = batch[batch.length - 1];
    position = { modified: String(lastRec.SystemModstamp), id: String(lastRec.Id) };
    if (calls > 1000) throw new Error("the reader never reached the end");
  }
  return { records, calls, last: position };
}

describe("crm: Salesforce provider (jsforce against the local fake)", function () {
  let fake: FakeSalesforce;

  beforeEach(async function () {
    fake = new FakeSalesforce();
    await fake.start();
  });

  afterEach(async function () {
    await fake.stop();
  });

  describe("logins and Test connection", function () {
    it("password + security token logs in through SOAP, shows user, org and API requests left, and stores the session", async function () {
      const auth = memoryAuth();
      const sf = createSalesforce(settings(fake), auth, FAST);
      const check = await sf.check();
      assert.equal(check.user, "analyst@example.com");
      assert.equal(check.org, `Acme Test Org (${fake.orgId})`);
      assert.equal(check.limits, "DailyApiRequests 14,200 of 15,000 left");
      assert.deepEqual(fake.logins, ["soap"]);
      assert.equal(auth.saved.length, 1);
      assert.equal(auth.saved[0].instanceUrl, fake.url);
      assert.ok(
        fake.sessions.has(auth.saved[0].accessToken),
        "the stored session is the one Salesforce issued",
      );
    });

    it("a crm-connection with username, password and security token alone (no connected app) is accepted and logs in", async function () {
      const parsed = parseCrmSettings(
        { provider: "salesforce", authType: "password", baseUrl: fake.url },
        { username: fake.username, password: fake.password, securityToken: fake.securityToken },
      );
      const check = await createSalesforce(parsed, memoryAuth(), FAST).check();
      assert.equal(check.user, "analyst@example.com");
      assert.deepEqual(fake.logins, ["soap"]);
    });

    it("a restarted provider reuses the stored session instead of logging in again", async function () {
      const auth = memoryAuth();
      await createSalesforce(settings(fake), auth, FAST).listObjects();
      const objects = await createSalesforce(settings(fake), auth, FAST).listObjects();
      assert.deepEqual(
        objects.map((o) => o.name),
        ["Account", "Contact", "Organization"],
      );
      assert.deepEqual(fake.logins, ["soap"]);
    });

    it("a wrong password is refused with Salesforce's reason and no secret in the message", async function () {
      const sf = createSalesforce(
        settings(fake, { password: "Wrong-Passw0rd!" }),
        memoryAuth(),
        FAST,
      );
      await assert.rejects(sf.check(), (err: Error) => {
        assert.match(err.message, /INVALID_LOGIN/);
        assert.ok(!err.message.includes("Wrong-Passw0rd!"));
        assert.ok(!err.message.includes(fake.securityToken));
        return true;
      });
    });

    it("password with a connected app uses the OAuth username-password flow", async function () {
      const sf = createSalesforce(
        settings(fake, { clientId: fake.clientId, clientSecret: fake.clientSecret }),
        memoryAuth(),
        FAST,
      );
      assert.equal((await sf.check()).user, fake.username);
      assert.deepEqual(fake.logins, ["password"]);
    });

    it("JWT bearer signs an RS256 assertion the org verifies with the app's certificate", async function () {
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      fake.jwtPublicKey = publicKey.export({ type: "spki", format: "pem" }).toString();
      const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
      const sf = createSalesforce(
        settings(fake, { authType: "jwt", clientId: fake.clientId, password: "", privateKey: pem }),
        memoryAuth(),
        FAST,
      );
      assert.equal((await sf.check()).user, fake.username);
      assert.deepEqual(fake.logins, ["jwt"]);

      const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const wrongPem = other.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
      const wrong = createSalesforce(
        settings(fake, {
          authType: "jwt",
          clientId: fake.clientId,
          password: "",
          privateKey: wrongPem,
        }),
        memoryAuth(),
        FAST,
      );
      await assert.rejects(wrong.check(), (err: Error) => {
        assert.match(err.message, /invalid assertion/);
        assert.ok(!err.message.includes(wrongPem.split("\n")[5]));
        return true;
      });
    });

    it("settings that cannot work are refused up front, naming the field", function () {
      assert.throws(
        () =>
          createSalesforce(
            settings(fake, { authType: "jwt", clientId: "x", privateKey: "" }),
            memoryAuth(),
          ),
        /needs privateKey/,
      );
      assert.throws(
        () => createSalesforce(settings(fake, { username: "" }), memoryAuth()),
        /needs username/,
      );
      assert.throws(
        () => createSalesforce(settings(fake, { authType: "token" }), memoryAuth()),
        /no "token" login/,
      );
    });
  });

  describe("OAuth2 refresh tokens and expired sessions", function () {
    function oauthSettings(): CrmSettings {
      return settings(fake, {
        authType: "oauth2",
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
        username: "",
        password: "",
        securityToken: "",
      });
    }

    it("an expired session is renewed once and the call completes; the rotated refresh token is persisted at once", async function () {
      fake.rotateRefreshTokens = true;
      const auth = memoryAuth({ accessToken: "", refreshToken: "refresh-initial-0001" });
      const sf = createSalesforce(oauthSettings(), auth, FAST);
      await sf.listObjects();
      assert.deepEqual(fake.logins, ["refresh"]);
      const first = auth.saved[0].refreshToken!;
      assert.notEqual(first, "refresh-initial-0001", "Salesforce rotated the token");
      assert.ok(fake.refreshTokens.has(first));

      fake.expireSessions();
      const fields = await sf.describe("Contact");
      assert.ok(fields.length > 0);
      assert.deepEqual(
        fake.logins,
        ["refresh", "refresh"],
        "exactly one renewal for the expired session",
      );
      const second = auth.saved[1].refreshToken!;
      assert.ok(fake.refreshTokens.has(second) && !fake.refreshTokens.has(first));

      // A restart after the rotation works only because the new token was saved.
      fake.expireSessions();
      const restarted = createSalesforce(oauthSettings(), auth, FAST);
      assert.equal((await restarted.check()).user, fake.username);
      assert.equal(fake.logins.length, 3);
    });

    it("a session refused again after its renewal surfaces INVALID_SESSION_ID: one refresh, two attempts, no loop", async function () {
      const auth = memoryAuth({ accessToken: "", refreshToken: "refresh-initial-0001" });
      const sf = createSalesforce(oauthSettings(), auth, FAST);
      await sf.listObjects();
      fake.refuseAllSessions = true;
      const before = fake.count("/services/data/v62.0/sobjects");
      await assert.rejects(sf.listObjects(), (err: Error & { code?: string }) => {
        assert.equal(err.code, "INVALID_SESSION_ID");
        assert.match(err.message, /renewed but Salesforce still refuses it/);
        return true;
      });
      assert.equal(fake.count("/services/data/v62.0/sobjects") - before, 2);
      assert.deepEqual(fake.logins, ["refresh", "refresh"]);
    });

    it("concurrent calls on an expired session share one renewal", async function () {
      const auth = memoryAuth({ accessToken: "", refreshToken: "refresh-initial-0001" });
      const sf = createSalesforce(oauthSettings(), auth, FAST);
      await sf.listObjects();
      fake.expireSessions();
      await Promise.all([
        sf.describe("Contact"),
        sf.describe("Account"),
        sf.listObjects(),
        sf.check(),
      ]);
      assert.deepEqual(fake.logins, ["refresh", "refresh"]);
    });

    it("a password session that expires mid-run logs in again once", async function () {
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      await sf.listObjects();
      fake.expireSessions();
      await sf.listObjects();
      assert.deepEqual(fake.logins, ["soap", "soap"]);
    });

    it("a revoked refresh token fails with Salesforce's reason; revoke() revokes at /services/oauth2/revoke", async function () {
      const auth = memoryAuth({ accessToken: "", refreshToken: "refresh-initial-0001" });
      const sf = createSalesforce(oauthSettings(), auth, FAST);
      await sf.check();
      await sf.revoke();
      assert.deepEqual(fake.revoked, ["refresh-initial-0001"]);
      const again = createSalesforce(
        oauthSettings(),
        memoryAuth({ accessToken: "", refreshToken: "refresh-initial-0001" }),
        FAST,
      );
      await assert.rejects(again.check(), (err: Error) => {
        assert.match(err.message, /expired access\/refresh token/);
        assert.ok(!err.message.includes("refresh-initial-0001"));
        return true;
      });
    });
  });

  describe("reads", function () {
    it("an incremental read returns every record exactly once when many share a SystemModstamp across batch boundaries", async function () {
      const t0 = sfNow(Date.parse("2026-03-01T10:00:00.000Z"));
      const t1 = sfNow(Date.parse("2026-03-01T10:00:01.000Z"));
      const t2 = sfNow(Date.parse("2026-03-01T10:00:02.000Z"));
      const expected: string[] = [];
      for (let i = 0; i < 45; i++) {
        const stamp = i < 10 ? t0 : i < 35 ? t1 : t2;
        expected.push(
          String(fake.insert("Contact", { LastName: `L${i}`, SystemModstamp: stamp }).Id),
        );
      }
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      // 7 does not divide the 25 records of t1: batches end in the middle of the tie.
      const { records, last } = await readAll(sf, "incremental", 7);
      const ids = records.map((r) => String(r.Id));
      assert.equal(new Set(ids).size, ids.length, "no record read twice");
      assert.deepEqual([...ids].sort(), [...expected].sort(), "no record lost");
      for (let i = 1; i < records.length; i++) {
        const a = [records[i - 1].SystemModstamp, records[i - 1].Id].map(String);
        const b = [records[i].SystemModstamp, records[i].Id].map(String);
        assert.ok(
          a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]),
          "ascending by (SystemModstamp, Id)",
        );
      }

      // A later change, and a new record stamped with the last watermark's time, are both picked up.
      const late = fake.insert("Contact", { LastName: "late", SystemModstamp: t2 });
      const changed = fake.objects.get("Contact")!.records.get(expected[0])!;
      changed.SystemModstamp = sfNow(Date.parse("2026-03-01T10:00:05.000Z"));
      const next = await readAll(sf, "incremental", 7, undefined, last);
      assert.deepEqual(
        next.records.map((r) => r.Id),
        [late.Id, expected[0]],
      );
    });

    it("returns requested fields, always with Id and SystemModstamp, and follows nextRecordsUrl past a page", async function () {
      fake.queryBatchSize = 50;
      for (let i = 0; i < 130; i++)
        fake.insert("Contact", { LastName: `L${i}`, Score__c: i / 2, Active__c: i % 2 === 0 });
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      const batch = await sf.read({
        object: "Contact",
        fields: ["lastname", "Score__c", "Active__c"],
        mode: "full",
        after: null,
        limit: 120,
      });
      assert.equal(batch.length, 120);
      assert.deepEqual(
        Object.keys(batch[0]).sort(),
        ["Active__c", "Id", "SystemModstamp", "Score__c", "lastname"].sort(),
      );
      assert.equal(batch[3].Score__c, 1.5);
      assert.equal(batch[3].Active__c, false);
      assert.equal(
        fake.log.filter((e) => /\/query\/01g[0-9a-f]+-\d+$/.test(e.path)).length,
        2,
        "two nextRecordsUrl pages",
      );
      const ids = batch.map((r) => String(r.Id));
      assert.deepEqual(ids, [...ids].sort(), "full reads are ordered by Id");
    });

    it("a full read resumes after the given Id", async function () {
      for (let i = 0; i < 30; i++) fake.insert("Contact", { LastName: `L${i}` });
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      const all = await readAll(sf, "full", 8);
      assert.equal(all.records.length, 30);
      const tenth = all.records[9];
      const rest = await readAll(sf, "full", 8, undefined, {
        modified: null,
        id: String(tenth.Id),
      });
      assert.deepEqual(
        rest.records.map((r) => r.Id),
        all.records.slice(10).map((r) => r.Id),
      );
    });

    it("above bulkQueryThreshold a full read goes through a Bulk API 2.0 query job, every record once, typed like REST", async function () {
      for (let i = 0; i < 300; i++)
        fake.insert("Contact", {
          LastName: `L${i}`,
          Score__c: i,
          Active__c: i % 3 === 0,
          Email: i === 7 ? null : `p${i}@x.test`,
        });
      const sf = createSalesforce(settings(fake), memoryAuth(), {
        ...FAST,
        bulkQueryThreshold: 100,
      });
      const { records } = await readAll(sf, "full", 70, [
        "LastName",
        "Score__c",
        "Active__c",
        "Email",
      ]);
      assert.equal(records.length, 300);
      assert.equal(new Set(records.map((r) => r.Id)).size, 300);
      assert.ok(fake.count("/services/data/v62.0/jobs/query") >= 1, "a Bulk query job ran");
      const seven = records.find((r) => r.LastName === "L7")!;
      assert.deepEqual([seven.Score__c, seven.Active__c, seven.Email], [7, false, null]);
      assert.equal(records.find((r) => r.LastName === "L9")!.Active__c, true);

      fake.log.length = 0;
      const small = createSalesforce(settings(fake), memoryAuth(), {
        ...FAST,
        bulkQueryThreshold: 1000,
      });
      assert.equal((await readAll(small, "full", 100)).records.length, 300);
      assert.equal(
        fake.count("/services/data/v62.0/jobs/query"),
        0,
        "below the threshold REST is used",
      );
    });

    it("object, field and watermark values never reach SOQL unchecked", async function () {
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      await assert.rejects(
        sf.read({
          object: "Contact WHERE Id != null",
          fields: [],
          mode: "full",
          after: null,
          limit: 5,
        }),
        /object "Contact WHERE Id != null" is not a Salesforce API name/,
      );
      await assert.rejects(
        sf.read({
          object: "Contact",
          fields: ["Name) FROM User--"],
          mode: "full",
          after: null,
          limit: 5,
        }),
        /field "Name\) FROM User--" is not a Salesforce API name/,
      );
      await assert.rejects(
        sf.read({
          object: "Contact",
          fields: [],
          mode: "incremental",
          after: { modified: "2024-01-01 OR Id != null", id: null },
          limit: 5,
        }),
        /watermark .* is not a Salesforce dateTime/,
      );
      await assert.rejects(
        sf.read({
          object: "Contact",
          fields: [],
          mode: "full",
          after: { modified: null, id: "x' OR Name != '" },
          limit: 5,
        }),
        /is not a Salesforce record id/,
      );
      assert.equal(
        buildReadSoql(
          "Contact",
          ["Email"],
          "incremental",
          { modified: "2024-05-01T10:00:00.000+0000", id: "003000000000001AAA" },
          10,
        ),
        "SELECT Id, SystemModstamp, Email FROM Contact WHERE SystemModstamp > 2024-05-01T10:00:00.000+00:00 OR (SystemModstamp = 2024-05-01T10:00:00.000+00:00 AND Id > '003000000000001AAA') ORDER BY SystemModstamp, Id LIMIT 10",
      );
    });

    it("describe marks external-ID fields unique; listObjects lists queryable objects", async function () {
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      const fields = await sf.describe("Contact");
      assert.deepEqual(
        fields.filter((f) => f.unique).map((f) => f.name),
        ["External_Id__c"],
      );
      assert.equal(fields.find((f) => f.name === "Score__c")?.type, "double");
      assert.deepEqual(
        (await sf.listObjects()).map((o) => o.name),
        ["Account", "Contact", "Organization"],
      );
    });
  });

  describe("upserts", function () {
    function contacts(n: number, missingLastName: Set<number>): SyncRecord[] {
      return Array.from({ length: n }, (_, i) => ({
        External_Id__c: `E${i}`,
        ...(missingLastName.has(i) ? {} : { LastName: `Last ${i}` }),
        Email: `e${i}@example.com`,
      }));
    }

    it("260 records go in two sObject Collection calls with insert / update / failed per record", async function () {
      for (let i = 0; i < 100; i++)
        fake.insert("Contact", { External_Id__c: `E${i}`, LastName: `Old ${i}` });
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      const broken = new Set([150, 170, 201, 230, 259]);
      const results = await sf.upsert("Contact", "External_Id__c", contacts(260, broken));
      assert.equal(
        fake.log.filter(
          (e) =>
            e.method === "PATCH" && e.path.includes("/composite/sobjects/Contact/External_Id__c"),
        ).length,
        2,
      );
      assert.equal(results.length, 260);
      const count = (a: string) => results.filter((r) => r.action === a).length;
      assert.deepEqual([count("update"), count("insert"), count("failed")], [100, 155, 5]);
      assert.deepEqual(results[42], { key: ["E42"], action: "update" });
      assert.deepEqual(results[120], { key: ["E120"], action: "insert" });
      assert.deepEqual(
        results.filter((r) => r.action === "failed").map((r) => r.key[0]),
        ["E150", "E170", "E201", "E230", "E259"],
      );
      assert.match(
        results[201].error!,
        /REQUIRED_FIELD_MISSING: Required fields are missing: \[LastName\]/,
      );
      const stored = [...fake.objects.get("Contact")!.records.values()];
      assert.equal(stored.length, 255);
      assert.equal(stored.find((r) => r.External_Id__c === "E42")!.LastName, "Last 42");
    });

    it("above bulkIngestThreshold the upsert runs as a Bulk API 2.0 ingest job with the same outcomes", async function () {
      for (let i = 0; i < 20; i++)
        fake.insert("Contact", { External_Id__c: `E${i}`, LastName: `Old ${i}` });
      const sf = createSalesforce(settings(fake), memoryAuth(), {
        ...FAST,
        bulkIngestThreshold: 50,
      });
      const records = contacts(80, new Set([60]));
      records[5].Email = null;
      records[6].LastName = 'Quote "and", comma';
      const results = await sf.upsert("Contact", "External_Id__c", records);
      assert.ok(
        fake.count("/services/data/v62.0/jobs/ingest") >= 4,
        "job created, uploaded, closed and read back",
      );
      assert.equal(fake.count("/services/data/v62.0/composite"), 0);
      const count = (a: string) => results.filter((r) => r.action === a).length;
      assert.deepEqual([count("update"), count("insert"), count("failed")], [20, 59, 1]);
      assert.equal(results[60].key[0], "E60");
      assert.match(results[60].error!, /REQUIRED_FIELD_MISSING/);
      const stored = [...fake.objects.get("Contact")!.records.values()];
      assert.equal(
        stored.find((r) => r.External_Id__c === "E5")!.Email,
        null,
        "null written as #N/A clears the field",
      );
      assert.equal(stored.find((r) => r.External_Id__c === "E6")!.LastName, 'Quote "and", comma');
    });

    it("refuses Id as the upsert key with the fix in the message", async function () {
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      await assert.rejects(
        sf.upsert("Contact", "Id", [{ Id: "003000000000001AAA" }]),
        /choose a field marked External ID/,
      );
    });
  });

  describe("limits", function () {
    it("REQUEST_LIMIT_EXCEEDED for concurrency backs off and the call completes", async function () {
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      await sf.listObjects();
      fake.limitExceeded = { remaining: 2, message: "ConcurrentPerOrgLongTxn Limit exceeded." };
      assert.equal((await sf.describe("Contact")).length > 0, true);
      assert.equal(fake.log.filter((e) => e.status === 403).length, 2);
    });

    it("the daily allowance used up fails at once with what to do, and retries stay bounded", async function () {
      const sf = createSalesforce(settings(fake), memoryAuth(), FAST);
      await sf.listObjects();
      fake.limitExceeded = { remaining: 100, message: "TotalRequests Limit exceeded." };
      await assert.rejects(sf.describe("Contact"), (err: Error & { code?: string }) => {
        assert.equal(err.code, "REQUEST_LIMIT_EXCEEDED");
        assert.match(err.message, /24-hour API allowance/);
        return true;
      });
      assert.equal(fake.log.filter((e) => e.status === 403).length, 1);

      fake.limitExceeded = { remaining: 100, message: "ConcurrentPerOrgLongTxn Limit exceeded." };
      await assert.rejects(sf.describe("Contact"), /REQUEST_LIMIT_EXCEEDED/);
      assert.equal(
        fake.log.filter((e) => e.status === 403).length,
        1 + 5,
        "first try + maxRetries (4)",
      );
    });
  });

  it("no password, security token, client secret, private key or token appears in any error", async function () {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const messages: string[] = [];
    const capture = async (p: Promise<unknown>) => {
      try {
        await p;
        messages.push("(no error)");
      } catch (err) {
        messages.push((err as Error).message);
      }
    };
    await capture(
      createSalesforce(settings(fake, { password: "Secret-Pw-991" }), memoryAuth(), FAST).check(),
    );
    await capture(
      createSalesforce(
        settings(fake, { authType: "jwt", clientId: fake.clientId, password: "", privateKey: pem }),
        memoryAuth(),
        FAST,
      ).check(),
    );
    await capture(
      createSalesforce(
        settings(fake, {
          authType: "jwt",
          clientId: fake.clientId,
          password: "",
          privateKey: "not a key",
        }),
        memoryAuth(),
        FAST,
      ).check(),
    );
    const oauth = settings(fake, {
      authType: "oauth2",
      clientId: fake.clientId,
      clientSecret: "Wrong-Client-Secret-77",
      password: "",
      securityToken: "",
    });
    await capture(
      createSalesforce(
        oauth,
        memoryAuth({ accessToken: "", refreshToken: "refresh-unknown-5555" }),
        FAST,
      ).check(),
    );
    const auth = memoryAuth();
    const sf = createSalesforce(settings(fake), auth, FAST);
    await sf.check();
    fake.refuseAllSessions = true;
    await capture(sf.listObjects());
    fake.refuseAllSessions = false;
    await capture(
      sf.read({
        object: "Contact",
        fields: ["NoSuchField__c"],
        mode: "full",
        after: null,
        limit: 5,
      }),
    );

    assert.equal(messages.length, 6);
    assert.ok(!messages.includes("(no error)"), messages.join("\n"));
    const keyBody = pem.split("\n")[5];
    const secrets = [
      "Secret-Pw-991",
      fake.password,
      fake.securityToken,
      "Wrong-Client-Secret-77",
      "refresh-unknown-5555",
      keyBody,
      "not a key",
      auth.saved[0].accessToken,
    ];
    for (const m of messages)
      for (const s of secrets) assert.ok(!m.includes(s), `"${m}" reveals a secret`);
    assert.match(messages[5], /INVALID_FIELD: No such column 'NoSuchField__c'/);
  });
});
