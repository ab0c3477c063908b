import assert from "node:assert/strict";
import { createHubSpot, type HubSpotProvider } from "../../nodes/lib/crm/hubspot";
import { CrmReader } from "../../nodes/lib/crm/reader";
import { CrmWriter } from "../../nodes/lib/crm/writer";
import { parseCrmSettings } from "../../nodes/lib/crm/index";
import type { CrmTokens } from "../../nodes/lib/crm/provider";
import type { TokenStore } from "../../nodes/lib/crm/http";
import type { WatermarkPosition } from "../../nodes/lib/state-store";
import type { SyncRecord } from "../../nodes/lib/types";
import { HubSpotFake } from "../fakes/hubspot";

const TOKEN = "pat-na1-test-token-123";

function provider(fake: HubSpotFake, extra: Record<string, unknown> = {}, store?: TokenStore) {
  const settings = parseCrmSettings(
    { provider: "hubspot", authType: "token", baseUrl: fake.url, maxConcurrency: 4, ...extra },
    { token: TOKEN, clientId: "cid", clientSecret: "csecret" },
  );
  return createHubSpot(settings, store);
}

function memoryStore(initial: CrmTokens): TokenStore & { saved: CrmTokens[] } {
  let current = { ...initial };
  const saved: CrmTokens[] = [];
  return {
    saved,
    load: async () => ({ ...current }),
    save: async (t) => {
      current = { ...t };
      saved.push({ ...t });
    },
  };
}

/** Reads everything the way runSource does: batch after batch from the last position. */
async function readAll(
  reader: CrmReader,
  batchSize: number,
  start: WatermarkPosition | null = null,
  between?: (batch: number) => void,
): Promise<SyncRecord[][]> {
  const batches: SyncRecord[][] = [];
  let after = start;
  for (;;) {
    const records = await reader.readBatch(after, batchSize);
    if (records.length === 0) break;
    batches.push(records);
    after = reader.positionOf(records[records.length - 1]);
    between?.(batches.length);
    if (records.length < batchSize) break;
  }
  return batches;
}

function contacts(n: number, from = 0) {
  return Array.from({ length: n }, (_, i) => ({
    email: `person${from + i}@example.com`,
    firstname: `First${from + i}`,
    lastname: "Example",
  }));
}

describe("HubSpot provider (real axios against the HubSpot fake)", function () {
  this.timeout(120_000);
  let fake: HubSpotFake;

  beforeEach(async () => {
    fake = new HubSpotFake({ token: TOKEN });
    await fake.start();
  });
  afterEach(() => fake.stop());

  it("tests the connection: portal, private app, daily limit left", async () => {
    const check = await provider(fake).check();
    assert.equal(check.user, "private app");
    assert.equal(check.org, "portal 62515 (app-eu1.hubspot.com)");
    assert.match(check.limits ?? "", /daily API calls [\d,]+ of 250,000 left/);
  });

  it("a wrong token is an auth error that does not show the token", async () => {
    const settings = parseCrmSettings(
      { provider: "hubspot", authType: "token", baseUrl: fake.url },
      { token: "pat-wrong-token" },
    );
    await assert.rejects(createHubSpot(settings).check(), (err: Error & { code?: string }) => {
      assert.equal(err.code, "auth-failed");
      assert.match(err.message, /HTTP 401, authentication failed: check the token/);
      assert.doesNotMatch(err.message, /pat-wrong-token/);
      return true;
    });
  });

  it("lists standard and custom objects and describes properties with unique keys", async () => {
    const hs = provider(fake);
    const objects = await hs.listObjects();
    assert.deepEqual(
      objects.map((o) => o.name),
      ["contacts", "companies", "deals", "tickets", "2-123456"],
    );
    assert.equal(objects[4].label, "Cars");
    const fields = await hs.describe("contacts");
    const unique = fields.filter((f) => f.unique).map((f) => f.name);
    assert.deepEqual(unique.sort(), ["customer_id", "email", "hs_object_id"]);
    assert.ok(fields.some((f) => f.name === "lastmodifieddate" && f.type === "datetime"));
  });

  it("reads 12,500 contacts incrementally past the 10,000 search cap, ties included, each once", async () => {
    // 5,000 records share one timestamp (an import), so ties cross many batches.
    fake.seed("contacts", contacts(3000), (i) =>
      new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    );
    fake.seed("contacts", contacts(5000, 3000), "2026-01-02T00:00:00.000Z");
    fake.seed("contacts", contacts(4500, 8000), (i) =>
      new Date(Date.UTC(2026, 0, 3) + i * 7).toISOString(),
    );
    const reader = new CrmReader(provider(fake), {
      object: "contacts",
      fields: ["email", "firstname"],
    });
    await reader.open("incremental");
    assert.equal(reader.cursorField, "lastmodifieddate");
    const batches = await readAll(reader, 1000);
    const all = batches.flat();
    assert.equal(all.length, 12_500);
    assert.equal(new Set(all.map((r) => r.id)).size, 12_500, "a record was read twice");
    assert.deepEqual(
      new Set(all.map((r) => r.email)),
      new Set(contacts(12_500).map((c) => c.email)),
    );
    // In (modified, id) order, so the watermark never passes an unread record.
    for (let i = 1; i < all.length; i += 1) {
      const a = Date.parse(String(all[i - 1].lastmodifieddate));
      const b = Date.parse(String(all[i].lastmodifieddate));
      assert.ok(a < b || (a === b && Number(all[i - 1].id) < Number(all[i].id)), `order at ${i}`);
    }
    assert.deepEqual(
      batches.map((b) => b.length),
      Array(13).fill(1000).slice(0, 12).concat([500]),
    );
    const searches = fake.requests("POST", "/crm/v3/objects/contacts/search");
    assert.ok(
      searches.every((r) => r.status === 200),
      "a search was refused (cap or limit)",
    );
    // Keyset paging costs about two searches per 200 records, not one per record.
    assert.ok(searches.length < (12_500 / 200) * 2 + 30, `${searches.length} searches`);
  });

  it("resumes inside a tie group from a watermark (modified, id) without loss or repeat", async () => {
    const seeded = fake.seed("contacts", contacts(450), "2026-02-01T10:00:00.000Z");
    fake.seed("contacts", contacts(50, 450), "2026-02-01T10:00:01.000Z");
    const ids = seeded.map((r) => r.id).sort((a, b) => a - b);
    const reader = new CrmReader(provider(fake), { object: "contacts", fields: [] });
    await reader.open("incremental");
    const start = { cursor: "2026-02-01T10:00:00.000Z", key: [String(ids[299])] };
    const rest = (await readAll(reader, 70, start)).flat();
    assert.deepEqual(
      rest.slice(0, 150).map((r) => Number(r.id)),
      ids.slice(300),
    );
    assert.equal(rest.length, 150 + 50);
  });

  it("a record changed during the run is read again at its new place and hides no other", async () => {
    fake.seed("contacts", contacts(2000), (i) =>
      new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
    );
    const reader = new CrmReader(provider(fake), { object: "contacts", fields: ["email"] });
    await reader.open("incremental");
    let changedId = 0;
    const batches = await readAll(reader, 500, null, (batch) => {
      if (batch !== 1) return;
      // A user edits an already-read contact: with offset paging every later record
      // would shift down by one and one would be skipped.
      changedId = [...fake.objects.contacts.keys()][10];
      fake.touch("contacts", changedId, { firstname: "Edited" }, "2026-06-01T00:00:00.000Z");
    });
    const ids = batches.flat().map((r) => Number(r.id));
    assert.equal(new Set(ids).size, 2000, "a record was lost");
    assert.equal(
      ids.filter((id) => id === changedId).length,
      2,
      "the changed record is read again",
    );
    assert.equal(ids[ids.length - 1], changedId);
  });

  it("a second read from the watermark returns only records changed since", async () => {
    fake.seed("contacts", contacts(300));
    const reader = new CrmReader(provider(fake), { object: "contacts", fields: ["email"] });
    await reader.open("incremental");
    const first = (await readAll(reader, 100)).flat();
    const watermark = reader.positionOf(first[first.length - 1]);
    const changed = [...fake.objects.contacts.keys()].slice(5, 8);
    for (const id of changed) fake.touch("contacts", id, { lastname: "Changed" });
    const second = (await readAll(reader, 100, watermark)).flat();
    assert.deepEqual(
      second.map((r) => Number(r.id)).sort((a, b) => a - b),
      changed,
    );
  });

  it("reads in full through the list endpoint with after paging", async () => {
    fake.seed(
      "companies",
      Array.from({ length: 250 }, (_, i) => ({ name: `Co ${i}`, domain: `co${i}.example` })),
    );
    const reader = new CrmReader(provider(fake), {
      object: "companies",
      fields: ["name", "domain"],
    });
    await reader.open("full");
    assert.equal(reader.cursorField, null);
    const all = (await readAll(reader, 120)).flat();
    assert.equal(all.length, 250);
    const ids = all.map((r) => Number(r.id));
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
    assert.equal(new Set(ids).size, 250);
    assert.equal(fake.requests("GET", "/crm/v3/objects/companies").length, 3);
  });

  it("upserts by email in calls of 100: insert/update from the response, bad records fail alone", async () => {
    fake.seed("contacts", contacts(50));
    const writer = new CrmWriter(provider(fake), {
      object: "contacts",
      keyField: "email",
      mode: "upsert",
    });
    const records: SyncRecord[] = contacts(250).map((c, i) => ({
      ...c,
      email: i < 50 ? c.email.toUpperCase() : c.email, // HubSpot lower-cases emails
      firstname: `New${i}`,
      id: i, // a database key: not a HubSpot property, left out
    }));
    records[120] = { ...records[120], email: "not-an-email" };
    const result = await writer.write(records);
    const count = (a: string) => result.outcomes.filter((o) => o.action === a).length;
    assert.equal(count("update"), 50);
    assert.equal(count("insert"), 199);
    assert.equal(count("failed"), 1);
    assert.equal(result.failed.length, 1);
    assert.equal(result.failed[0].record.email, "not-an-email");
    assert.match(result.failed[0].error, /VALIDATION_ERROR: .*not a valid email/);
    assert.deepEqual(result.ignoredFields, ["id"]);
    const calls = fake.requests("POST", "/crm/v3/objects/contacts/batch/upsert");
    assert.equal(calls.length, 3);
    assert.ok(calls.every((c) => (c.body as { inputs: unknown[] }).inputs.length <= 100));
    assert.equal(fake.objects.contacts.size, 249);
    assert.equal(
      fake.findBy("contacts", "email", "person0@example.com")?.properties.firstname,
      "New0",
    );
  });

  it("a batch HubSpot refuses whole (one unknown property) is split until the bad record is found", async () => {
    const hs = provider(fake);
    const records: SyncRecord[] = contacts(40).map((c) => ({ ...c }));
    records[17] = { ...records[17], favourite_colour: "teal" };
    const results = await hs.upsert("contacts", "email", records);
    assert.equal(results.filter((r) => r.action === "insert").length, 39);
    const failed = results.filter((r) => r.action === "failed");
    assert.deepEqual(
      failed.map((f) => f.key[0]),
      ["person17@example.com"],
    );
    assert.match(failed[0].error ?? "", /favourite_colour.*does not exist/);
  });

  it("updates by id with batch/update; an unknown id fails alone", async () => {
    const [a, b] = fake.seed("deals", [{ dealname: "A" }, { dealname: "B" }]);
    const results = await provider(fake).upsert("deals", "id", [
      { id: String(a.id), dealname: "A2" },
      { id: "999999", dealname: "ghost" },
      { id: String(b.id), amount: "10.50" },
    ]);
    assert.deepEqual(
      results.map((r) => r.action),
      ["update", "failed", "update"],
    );
    assert.match(results[1].error ?? "", /OBJECT_NOT_FOUND/);
    assert.equal(fake.objects.deals.get(a.id)?.properties.dealname, "A2");
    assert.equal(fake.objects.deals.get(b.id)?.properties.amount, "10.50");
  });

  it("honours 429 Retry-After during a read and loses nothing", async () => {
    fake.seed("contacts", contacts(600));
    fake.rateLimit(2, 1, (r) => r.path.endsWith("/search"));
    const reader = new CrmReader(provider(fake), { object: "contacts", fields: [] });
    await reader.open("incremental");
    const started = Date.now();
    const all = (await readAll(reader, 250)).flat();
    assert.equal(new Set(all.map((r) => r.id)).size, 600);
    assert.ok(Date.now() - started >= 1900, "Retry-After was not waited for");
  });

  it("stops at once on the daily limit (retrying cannot help)", async () => {
    fake.injectFault(
      {
        kind: "status",
        status: 429,
        retryAfter: "1",
        body: {
          status: "error",
          message: "You have reached your daily limit.",
          category: "RATE_LIMITS",
          policyName: "DAILY",
        },
      },
      1,
    );
    await assert.rejects(provider(fake).listObjects(), /HTTP 429.*daily limit/);
    assert.equal(fake.log.length, 1);
  });

  it("OAuth2: a token past its expiry is refreshed before the call, even at concurrency 1", async () => {
    await fake.stop();
    fake = new HubSpotFake({
      oauth: {
        clientId: "cid",
        clientSecret: "csecret",
        accessToken: "at-0",
        refreshToken: "rt-0",
      },
    });
    await fake.start();
    fake.seed("deals", [{ dealname: "A" }, { dealname: "B" }]);
    const store = memoryStore({
      accessToken: "at-0",
      refreshToken: "rt-0",
      expiresAt: Date.now() - 1000,
    });
    const hs = provider(fake, { authType: "oauth2", maxConcurrency: 1 }, store);
    const reads = await Promise.all(
      [1, 2, 3].map(() =>
        hs.read({ object: "deals", fields: ["dealname"], mode: "full", after: null, limit: 10 }),
      ),
    );
    assert.deepEqual(
      reads.map((r) => r.length),
      [2, 2, 2],
    );
    // One refresh shared by the three calls; no call went out with the expired token.
    assert.equal(fake.log.filter((r) => r.path === "/oauth/v1/token").length, 1);
    assert.equal(fake.log.filter((r) => r.status === 401).length, 0);
    assert.equal(store.saved.length, 1);
    assert.ok((store.saved[0].expiresAt ?? 0) > Date.now());
  });

  it("OAuth2: an expired token is refreshed once, the rotated refresh token saved at once", async () => {
    await fake.stop();
    fake = new HubSpotFake({
      oauth: {
        clientId: "cid",
        clientSecret: "csecret",
        accessToken: "at-0",
        refreshToken: "rt-0",
        rotate: true,
      },
    });
    await fake.start();
    fake.seed("contacts", contacts(10));
    const store = memoryStore({ accessToken: "at-0", refreshToken: "rt-0" });
    const hs: HubSpotProvider = provider(fake, { authType: "oauth2" }, store);
    const check = await hs.check();
    assert.equal(check.user, "analyst@example.com");
    fake.expireAccessTokens();
    const records = await hs.read({
      object: "contacts",
      fields: [],
      mode: "incremental",
      after: null,
      limit: 100,
    });
    assert.equal(records.length, 10);
    assert.equal(store.saved.length, 1);
    assert.equal(store.saved[0].refreshToken, "hs-refresh-1");
    assert.equal(fake.currentRefreshToken, "hs-refresh-1");
    assert.ok(store.saved[0].accessToken.startsWith("hs-access-1-"));
    assert.equal(hs.http.stats.refreshes, 1);
  });
});
