/**
 * The Zoho CRM provider through the real axios against test/fakes/zoho.ts: token
 * refresh and persistence, what "Test connection" shows, keyset reads on
 * (Modified_Time, id) where the list API orders ties arbitrarily and page tokens
 * carry past 2,000 records, upsert outcomes per record 100 a call, one refresh per
 * refused call, 429 honoured within bounds, and secrets kept out of every error.
 */
import assert from "node:assert/strict";
import { memoryAuth } from "../../nodes/lib/crm/auth";
import type { CrmPosition, CrmSettings } from "../../nodes/lib/crm/provider";
import {
  accountsUrlFor,
  createZoho,
  type ZohoOptions,
  type ZohoProvider,
} from "../../nodes/lib/crm/zoho";
import type { SyncRecord } from "../../nodes/lib/types";
import { FakeZoho, zohoTime } from "../fakes/zoho";

function settings(fake: FakeZoho, over: Partial<CrmSettings> = {}): CrmSettings {
  return {
    provider: "zoho",
    authType: "oauth2",
    baseUrl: fake.url,
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    token: "",
    username: "",
    password: "",
    securityToken: "",
    privateKey: "",
    maxConcurrency: 4,
    ...over,
  };
}

const FAST: ZohoOptions = { retryBaseMs: 5 };
const initial = () => memoryAuth({ accessToken: "", refreshToken: "1000.refresh.initial" });

async function readAll(
  zoho: ZohoProvider,
  mode: "full" | "incremental",
  limit: number,
  after: CrmPosition | null = null,
): Promise<{ records: SyncRecord[]; last: CrmPosition | null }> {
  const records: SyncRecord[] = [];
  let position = after;
  for (let calls = 0; ; calls++) {
    const batch = await zoho.read({
      object: "Contacts",
      fields: ["Last_Name", "External_Id"],
      mode,
      after: position,
      limit,
    });
    if (batch.length === 0) break;
    assert.ok(batch.length <= limit);
    records.push(...batch);
    const lastRec = batch[batch.length - 1];
    position = { modified: String(lastRec.Modified_Time), id: String(lastRec.id) };
    if (calls > 1000) throw new Error("the reader never reached the end");
  }
  return { records, last: position };
}

function ordered(a: SyncRecord, b: SyncRecord): boolean {
  const ta = Date.parse(String(a.Modified_Time));
  const tb = Date.parse(String(b.Modified_Time));
  return ta < tb || (ta === tb && BigInt(String(a.id)) < BigInt(String(b.id)));
}

describe("crm: Zoho CRM provider (axios against the local fake)", function () {
  let fake: FakeZoho;

  beforeEach(async function () {
    fake = new FakeZoho();
    await fake.start();
  });

  afterEach(async function () {
    await fake.stop();
  });

  describe("tokens and Test connection", function () {
    it("refreshes an access token at the accounts server, shows user and org, and stores the tokens with their expiry and API domain", async function () {
      const auth = initial();
      const zoho = createZoho(settings(fake), auth, FAST);
      const check = await zoho.check();
      assert.deepEqual(check, {
        user: "ana@example.com",
        org: "Zylker Test (4150868000000225001)",
      });
      assert.deepEqual(fake.refreshes, ["1000.refresh.initial"]);
      assert.equal(auth.saved.length, 1);
      const saved = auth.saved[0];
      assert.ok(fake.accessTokens.has(saved.accessToken));
      assert.equal(saved.refreshToken, "1000.refresh.initial");
      assert.equal(saved.instanceUrl, fake.url);
      assert.ok(Math.abs(saved.expiresAt! - (Date.now() + 3600_000)) < 10_000);
      const tokenCall = fake.log.find((e) => e.path === "/oauth/v2/token")!;
      assert.deepEqual(
        tokenCall.query,
        {},
        "client secret and refresh token go in the body, not the URL",
      );
    });

    it("uses a stored token until a minute before it expires, then refreshes first", async function () {
      const auth = initial();
      await createZoho(settings(fake), auth, FAST).listObjects();
      await createZoho(settings(fake), auth, FAST).listObjects();
      assert.equal(fake.refreshes.length, 1, "a valid stored token is reused");
      const stored = (await auth.load())!;
      await auth.save({ ...stored, expiresAt: Date.now() + 30_000 });
      await createZoho(settings(fake), auth, FAST).listObjects();
      assert.equal(fake.refreshes.length, 2);
      assert.equal(
        fake.log.filter((e) => e.status === 401).length,
        0,
        "refreshed before Zoho had to refuse it",
      );
    });

    it("a 401 refreshes once and the call completes; a rotated refresh token is saved at once", async function () {
      fake.rotateRefreshTokens = true;
      const auth = initial();
      const zoho = createZoho(settings(fake), auth, FAST);
      await zoho.listObjects();
      const first = auth.saved[0].refreshToken!;
      assert.notEqual(first, "1000.refresh.initial");
      fake.expireTokens();
      assert.ok((await zoho.describe("Contacts")).length > 0);
      assert.equal(fake.refreshes.length, 2);
      const second = auth.saved[1].refreshToken!;
      assert.ok(fake.refreshTokens.has(second) && !fake.refreshTokens.has(first));
      fake.expireTokens();
      assert.ok(
        (await createZoho(settings(fake), auth, FAST).listObjects()).length > 0,
        "a restart refreshes with the saved token",
      );
    });

    it("a token refused again after its refresh surfaces: one refresh, two attempts, no loop", async function () {
      const zoho = createZoho(settings(fake), initial(), FAST);
      await zoho.listObjects();
      fake.refuseAllTokens = true;
      const before = fake.count("/crm/v7/settings/modules");
      await assert.rejects(
        zoho.listObjects(),
        (err: Error & { code?: string; status?: number }) => {
          assert.equal(err.status, 401);
          assert.equal(err.code, "INVALID_TOKEN");
          assert.match(err.message, /refreshed but Zoho still refuses it/);
          return true;
        },
      );
      assert.equal(fake.count("/crm/v7/settings/modules") - before, 2);
      assert.equal(fake.refreshes.length, 2);
    });

    it("a revoked refresh token fails with what to do; revoke() revokes at the accounts server", async function () {
      const auth = initial();
      const zoho = createZoho(settings(fake), auth, FAST);
      await zoho.check();
      await zoho.revoke();
      assert.deepEqual(fake.revoked, ["1000.refresh.initial"]);
      await assert.rejects(
        createZoho(settings(fake), initial(), FAST).check(),
        /invalid_code .*press Connect again/,
      );
    });

    it("derives the accounts server from the data centre", function () {
      assert.equal(accountsUrlFor("https://www.zohoapis.com"), "https://accounts.zoho.com");
      assert.equal(accountsUrlFor("https://www.zohoapis.eu"), "https://accounts.zoho.eu");
      assert.equal(accountsUrlFor("https://www.zohoapis.com.au"), "https://accounts.zoho.com.au");
      assert.equal(accountsUrlFor("https://zohoapis.ca"), "https://accounts.zohocloud.ca");
      assert.equal(accountsUrlFor("https://sandbox.zohoapis.in"), "https://accounts.zoho.in");
      assert.equal(accountsUrlFor("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    });

    it("settings that cannot work are refused up front, naming the field", function () {
      assert.throws(
        () => createZoho(settings(fake, { clientSecret: "" }), initial()),
        /needs clientSecret/,
      );
      assert.throws(
        () => createZoho(settings(fake, { authType: "password" }), initial()),
        /no "password" login/,
      );
      assert.throws(
        () => createZoho(settings(fake, { baseUrl: "zohoapis" }), initial()),
        /baseUrl "zohoapis" is not a URL/,
      );
    });
  });

  describe("discovery", function () {
    it("lists API-supported modules and marks duplicate-check fields unique", async function () {
      const zoho = createZoho(settings(fake), initial(), FAST);
      assert.deepEqual(await zoho.listObjects(), [
        { name: "Contacts", label: "Contacts" },
        { name: "Leads", label: "Leads" },
      ]);
      const fields = await zoho.describe("Contacts");
      assert.deepEqual(
        fields.filter((f) => f.unique).map((f) => f.name),
        ["Email", "External_Id"],
      );
      assert.equal(fields.find((f) => f.name === "Score")?.type, "integer");
    });
  });

  describe("reads", function () {
    it("an incremental read returns every record once when ties on Modified_Time span pages and batches", async function () {
      const base = Date.parse("2026-03-01T10:00:00Z");
      const expected: string[] = [];
      for (let i = 0; i < 45; i++) {
        const t = i < 10 ? base : i < 35 ? base + 1000 : base + 2000;
        expected.push(
          String(fake.insert("Contacts", { Last_Name: `L${i}`, Modified_Time: zohoTime(t) }).id),
        );
      }
      const zoho = createZoho(settings(fake), initial(), { ...FAST, pageSize: 10 });
      const { records, last } = await readAll(zoho, "incremental", 7);
      const ids = records.map((r) => String(r.id));
      assert.equal(new Set(ids).size, ids.length, "no record twice");
      assert.deepEqual([...ids].sort(), [...expected].sort(), "no record lost");
      for (let i = 1; i < records.length; i++)
        assert.ok(ordered(records[i - 1], records[i]), "ascending by (Modified_Time, id)");

      const sent = fake.log
        .filter((e) => e.path === "/crm/v7/Contacts" && e.ifModifiedSince)
        .map((e) => e.ifModifiedSince!);
      assert.ok(sent.length > 0);
      assert.ok(
        sent.every((h) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$/.test(h)),
        "If-Modified-Since in Zoho's ISO form",
      );
      assert.ok(
        fake.log.every((e) => e.path !== "/crm/v7/Contacts" || e.query.sort_by === "Modified_Time"),
      );

      const late = fake.insert("Contacts", {
        Last_Name: "late",
        Modified_Time: zohoTime(base + 2000),
      });
      const next = await readAll(zoho, "incremental", 7, last);
      assert.deepEqual(
        next.records.map((r) => r.id),
        [late.id],
        "a record stamped with the watermark's second and a higher id is picked up",
      );
    });

    it("a full read goes past 2,000 records with page tokens, each record once, in id order", async function () {
      const t = zohoTime(Date.parse("2026-03-01T10:00:00Z"));
      for (let i = 0; i < 2150; i++)
        fake.insert("Contacts", { Last_Name: `L${i}`, Modified_Time: t });
      const zoho = createZoho(settings(fake), initial(), FAST);
      const { records } = await readAll(zoho, "full", 500);
      assert.equal(records.length, 2150);
      const ids = records.map((r) => BigInt(String(r.id)));
      for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1] < ids[i]);
      assert.ok(
        fake.log.some((e) => e.query.page_token),
        "page_token used",
      );
      assert.equal(fake.log.filter((e) => e.status === 400).length, 0);
      const listCalls = fake.log.filter((e) => e.path === "/crm/v7/Contacts").length;
      assert.ok(listCalls <= 13, `one pass over the pages (${listCalls} list calls)`);
    });

    it("an empty module and an empty page (204) read as no records", async function () {
      const zoho = createZoho(settings(fake), initial(), FAST);
      assert.deepEqual(
        await zoho.read({
          object: "Leads",
          fields: [],
          mode: "incremental",
          after: null,
          limit: 10,
        }),
        [],
      );
      assert.ok(fake.log.some((e) => e.status === 204));
    });

    it("module and field names are checked before they reach a URL", async function () {
      const zoho = createZoho(settings(fake), initial(), FAST);
      await assert.rejects(
        zoho.read({ object: "Contacts/../org", fields: [], mode: "full", after: null, limit: 5 }),
        /module "Contacts\/..\/org" is not a Zoho API name/,
      );
      await assert.rejects(
        zoho.read({
          object: "Contacts",
          fields: ["Email,Owner"],
          mode: "full",
          after: null,
          limit: 5,
        }),
        /field "Email,Owner" is not a Zoho API name/,
      );
    });
  });

  describe("upserts", function () {
    it("250 records go in three calls of at most 100, with insert / update / failed per record", async function () {
      for (let i = 0; i < 60; i++)
        fake.insert("Contacts", { External_Id: `X${i}`, Last_Name: `Old ${i}` });
      const records: SyncRecord[] = Array.from({ length: 250 }, (_, i) => ({
        External_Id: `X${i}`,
        ...(i === 100 || i === 249 ? {} : { Last_Name: `New ${i}` }),
        Email: i === 7 ? "not-an-email" : `x${i}@example.com`,
      }));
      const zoho = createZoho(settings(fake), initial(), FAST);
      const results = await zoho.upsert("Contacts", "External_Id", records);
      assert.equal(fake.count("/crm/v7/Contacts/upsert"), 3);
      const count = (a: string) => results.filter((r) => r.action === a).length;
      assert.deepEqual([count("update"), count("insert"), count("failed")], [59, 188, 3]);
      assert.deepEqual(results[5], { key: ["X5"], action: "update" });
      assert.deepEqual(results[150], { key: ["X150"], action: "insert" });
      assert.deepEqual(results[7], {
        key: ["X7"],
        action: "failed",
        error: "INVALID_DATA: invalid data (Email)",
      });
      assert.deepEqual(results[249], {
        key: ["X249"],
        action: "failed",
        error: "MANDATORY_NOT_FOUND: required field not found (Last_Name)",
      });
      const stored = [...fake.modules.get("Contacts")!.records.values()];
      assert.equal(stored.length, 60 + 188);
      assert.equal(stored.find((r) => r.External_Id === "X5")!.Last_Name, "New 5");
    });
  });

  describe("rate limits", function () {
    it("429 with Retry-After waits as asked, then completes", async function () {
      const zoho = createZoho(settings(fake), initial(), FAST);
      await zoho.listObjects();
      fake.throttle = { remaining: 1, headers: { "Retry-After": "1" } };
      const started = Date.now();
      await zoho.listObjects();
      assert.ok(Date.now() - started >= 950, "waited the second Zoho asked for");
      assert.equal(fake.log.filter((e) => e.status === 429).length, 1);
    });

    it("429 with X-RATELIMIT-RESET waits until the reset", async function () {
      const zoho = createZoho(settings(fake), initial(), FAST);
      await zoho.listObjects();
      fake.throttle = { remaining: 1, headers: { "X-RATELIMIT-RESET": String(Date.now() + 600) } };
      const started = Date.now();
      await zoho.listObjects();
      assert.ok(Date.now() - started >= 500);
    });

    it("a storm of 429s fails after maxRetries with Zoho's message; a wait beyond maxRetryWaitMs fails at once", async function () {
      const zoho = createZoho(settings(fake), initial(), { ...FAST, maxRetries: 3 });
      await zoho.listObjects();
      fake.throttle = { remaining: 100, headers: {} };
      await assert.rejects(
        zoho.listObjects(),
        /TOO_MANY_REQUESTS: The number of requests exceeds the limit\. after 4 attempts/,
      );
      assert.equal(fake.log.filter((e) => e.status === 429).length, 4);

      fake.throttle = { remaining: 100, headers: { "Retry-After": "3600" } };
      await assert.rejects(zoho.listObjects(), /Zoho asks to wait 3600 s/);
      assert.equal(fake.log.filter((e) => e.status === 429).length, 5);
    });
  });

  it("no client secret, refresh token or access token appears in any error", async function () {
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
      createZoho(settings(fake, { clientSecret: "Wrong-Zoho-Secret-55" }), initial(), FAST).check(),
    );
    await capture(
      createZoho(
        settings(fake),
        memoryAuth({ accessToken: "", refreshToken: "1000.refresh.unknown77" }),
        FAST,
      ).check(),
    );
    const auth = initial();
    const zoho = createZoho(settings(fake), auth, FAST);
    await zoho.check();
    fake.refuseAllTokens = true;
    await capture(zoho.listObjects());
    fake.refuseAllTokens = false;
    await capture(zoho.describe("Nope"));
    assert.equal(messages.length, 4);
    assert.ok(!messages.includes("(no error)"), messages.join("\n"));
    assert.match(messages[0], /invalid_client/);
    assert.match(messages[3], /INVALID_MODULE/);
    const secrets = [
      "Wrong-Zoho-Secret-55",
      fake.clientSecret,
      "1000.refresh.unknown77",
      "1000.refresh.initial",
      ...auth.saved.map((t) => t.accessToken),
    ];
    for (const m of messages)
      for (const s of secrets) assert.ok(!m.includes(s), `"${m}" reveals a secret`);
  });
});
