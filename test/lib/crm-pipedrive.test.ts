import assert from "node:assert/strict";
import { createPipedrive } from "../../nodes/lib/crm/pipedrive";
import { CrmReader } from "../../nodes/lib/crm/reader";
import { CrmWriter } from "../../nodes/lib/crm/writer";
import { parseCrmSettings } from "../../nodes/lib/crm/index";
import type { WatermarkPosition } from "../../nodes/lib/state-store";
import type { SyncRecord } from "../../nodes/lib/types";
import { PipedriveFake } from "../fakes/pipedrive";

const TOKEN = "pd-api-token-0123456789";

function provider(fake: PipedriveFake, token = TOKEN) {
  return createPipedrive(
    parseCrmSettings({ provider: "pipedrive", authType: "token", baseUrl: fake.url }, { token }),
  );
}

async function readAll(
  reader: CrmReader,
  batchSize: number,
  start: WatermarkPosition | null = null,
): Promise<SyncRecord[][]> {
  const batches: SyncRecord[][] = [];
  let after = start;
  for (;;) {
    const records = await reader.readBatch(after, batchSize);
    if (records.length === 0) break;
    batches.push(records);
    after = reader.positionOf(records[records.length - 1]);
    if (records.length < batchSize) break;
  }
  return batches;
}

function persons(n: number, from = 0) {
  return Array.from({ length: n }, (_, i) => ({
    name: `Person ${from + i}`,
    emails: [{ value: `p${from + i}@example.com`, primary: true, label: "work" }],
  }));
}

describe("Pipedrive provider (real axios against the Pipedrive fake)", function () {
  this.timeout(60_000);
  let fake: PipedriveFake;

  beforeEach(async () => {
    fake = new PipedriveFake({ apiToken: TOKEN });
    await fake.start();
  });
  afterEach(() => fake.stop());

  it("tests the connection: user, company, limits; the token goes in a header, not the URL", async () => {
    const check = await provider(fake).check();
    assert.deepEqual(check, {
      user: "ana@example.com",
      org: "Example GmbH (example.pipedrive.com)",
      limits: "daily requests 9,990 left, 39 left in the current window",
    });
    assert.ok(fake.log.every((r) => !r.query.includes("api_token")));
  });

  it("a wrong token is an auth error without the token", async () => {
    await assert.rejects(
      provider(fake, "pd-wrong-token-xyz").check(),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "auth-failed");
        assert.match(err.message, /Pipedrive GET \/api\/v1\/users\/me: HTTP 401/);
        assert.match(err.message, /unauthorized access/);
        assert.doesNotMatch(err.message, /pd-wrong-token-xyz/);
        return true;
      },
    );
  });

  it("lists the four objects and describes fields, v2 names included", async () => {
    const pd = provider(fake);
    assert.deepEqual(
      (await pd.listObjects()).map((o) => o.name),
      ["persons", "organizations", "deals", "activities"],
    );
    const fields = (await pd.describe("persons")).map((f) => f.name);
    for (const f of ["name", "email", "emails", "update_time", "id"])
      assert.ok(fields.includes(f), f);
    await assert.rejects(pd.describe("leads"), /object "leads" is not supported: choose persons/);
  });

  it("reads incrementally by update_time with whole-second ties, each record once, in order", async () => {
    const t0 = Date.parse("2026-03-01T08:00:00Z");
    // 400 persons per second: ties cross every batch boundary.
    fake.seed("persons", persons(1600), (i) => t0 + Math.floor(i / 400) * 1000);
    const reader = new CrmReader(provider(fake), { object: "persons", fields: ["name", "emails"] });
    await reader.open("incremental");
    const batches = await readAll(reader, 250);
    const all = batches.flat();
    assert.equal(all.length, 1600);
    assert.equal(new Set(all.map((r) => r.id)).size, 1600);
    for (let i = 1; i < all.length; i += 1) {
      const a = Date.parse(String(all[i - 1].update_time));
      const b = Date.parse(String(all[i].update_time));
      assert.ok(a < b || (a === b && Number(all[i - 1].id) < Number(all[i].id)), `order at ${i}`);
    }
    assert.deepEqual(Object.keys(all[0]).sort(), ["emails", "id", "name", "update_time"]);
    // One cursor followed through the run: 1,600 records at 500 a page.
    const lists = fake.requests("GET", "/api/v2/persons");
    assert.equal(lists.length, 4);
    assert.ok(lists.every((r) => /sort_by=update_time/.test(r.query)));

    // Second run from the watermark: only the records changed since.
    fake.clock = Date.parse("2026-03-02T00:00:00Z");
    const changed = [...fake.objects.persons.keys()].slice(100, 103);
    for (const id of changed) fake.touch("persons", id, { name: "Changed" });
    const watermark = reader.positionOf(all[all.length - 1]);
    const second = (await readAll(reader, 250, watermark)).flat();
    assert.deepEqual(
      second.map((r) => r.id),
      changed,
    );
    assert.match(fake.log[fake.log.length - 1].query, /updated_since=2026-03-01T08%3A00%3A03Z/);
  });

  it("resumes inside a group of equal update_time from a watermark (time, id)", async () => {
    const seeded = fake.seed("persons", persons(300), () => Date.parse("2026-03-01T10:00:00Z"));
    const reader = new CrmReader(provider(fake), { object: "persons", fields: [] });
    await reader.open("incremental");
    const start = { cursor: "2026-03-01T10:00:00Z", key: [seeded[199].id] };
    const rest = (await readAll(reader, 40, start)).flat();
    assert.deepEqual(
      rest.map((r) => r.id),
      seeded.slice(200).map((r) => r.id),
    );
  });

  it("reads in full by id", async () => {
    fake.seed(
      "deals",
      Array.from({ length: 700 }, (_, i) => ({ title: `Deal ${i}`, value: i })),
    );
    const reader = new CrmReader(provider(fake), { object: "deals", fields: ["title", "value"] });
    await reader.open("full");
    const all = (await readAll(reader, 300)).flat();
    assert.deepEqual(
      all.map((r) => r.id),
      [...fake.objects.deals.keys()],
    );
    assert.equal(all[5].value, 5);
  });

  it("upserts by email: search, then update (PATCH v2) or create (POST v2); bad records fail alone", async () => {
    fake.seed("persons", persons(10));
    fake.seed("persons", [
      { name: "Twin A", emails: [{ value: "twin@example.com" }] },
      { name: "Twin B", emails: [{ value: "twin@example.com" }] },
    ]);
    const writer = new CrmWriter(provider(fake), {
      object: "persons",
      keyField: "email",
      mode: "upsert",
    });
    const records: SyncRecord[] = Array.from({ length: 30 }, (_, i) => ({
      id: 1000 + i, // the database's key: not written
      email: `p${i}@example.com`,
      name: `Renamed ${i}`,
    }));
    records[25] = { email: "noname@example.com" }; // a new person needs a name
    records.push({ email: "twin@example.com", name: "Which one?" });
    const result = await writer.write(records);
    const actions = result.outcomes.map((o) => o.action);
    assert.equal(actions.filter((a) => a === "update").length, 10);
    assert.equal(actions.filter((a) => a === "insert").length, 19);
    assert.equal(result.failed.length, 2);
    const errors = Object.fromEntries(result.failed.map((f) => [String(f.record.email), f.error]));
    assert.match(errors["noname@example.com"], /HTTP 400.*name: Field is required/);
    assert.match(errors["twin@example.com"], /2 Pipedrive persons have email = twin@example.com/);
    assert.equal(fake.objects.persons.get(1)?.name, "Renamed 0");
    const created = [...fake.objects.persons.values()].find((p) => p.name === "Renamed 20")!;
    assert.deepEqual(created.emails, [{ value: "p20@example.com", primary: true, label: "work" }]);
    assert.equal(fake.requests("POST", "/api/v2/persons").length, 20);
    assert.equal(fake.requests("PATCH", "/api/v2/persons/").length, 10);
    assert.ok(
      fake
        .requests("GET", "/api/v1/persons/search")
        .every((r) => /exact_match=true/.test(r.query) && /fields=email/.test(r.query)),
    );
  });

  it("updates by id; an unknown id fails alone; activities are matched by id only", async () => {
    const [deal] = fake.seed("deals", [{ title: "Old", value: 1 }]);
    const pd = provider(fake);
    const results = await pd.upsert("deals", "id", [
      { id: deal.id, title: "New" },
      { id: 424242, title: "Ghost" },
    ]);
    assert.deepEqual(
      results.map((r) => r.action),
      ["update", "failed"],
    );
    assert.match(results[1].error ?? "", /HTTP 404.*deal not found/);
    assert.equal(fake.objects.deals.get(deal.id)?.title, "New");
    await assert.rejects(
      pd.upsert("activities", "subject", [{ subject: "Call" }]),
      /use key column id/,
    );
  });

  it("a rate limit slows the read (Retry-After) and loses nothing", async () => {
    fake.seed(
      "organizations",
      Array.from({ length: 1200 }, (_, i) => ({ name: `Org ${i}` })),
    );
    fake.rateLimit(1, 1, (r) => r.path === "/api/v2/organizations" && r.query.has("cursor"));
    const reader = new CrmReader(provider(fake), { object: "organizations", fields: ["name"] });
    await reader.open("incremental");
    const started = Date.now();
    const all = (await readAll(reader, 500)).flat();
    assert.equal(new Set(all.map((r) => r.id)).size, 1200);
    assert.ok(Date.now() - started >= 950);
    assert.equal(fake.log.filter((r) => r.status === 429).length, 1);
  });

  it("OAuth2: calls go to the api_domain that came with the token", async () => {
    const tokens = { accessToken: TOKEN, refreshToken: "pd-refresh", instanceUrl: fake.url };
    const pd = createPipedrive(
      parseCrmSettings(
        { provider: "pipedrive", authType: "oauth2" },
        { clientId: "c", clientSecret: "s" },
      ),
      { load: async () => tokens, save: async () => undefined },
    );
    const check = await pd.check();
    assert.equal(check.user, "ana@example.com");
    assert.equal(fake.requests("GET", "/api/v1/users/me").length, 1);
  });

  it("an outage during an upsert fails the batch rather than marking records failed", async () => {
    fake.seed("persons", persons(1));
    fake.injectFault({ kind: "status", status: 503 }, 10);
    const pd = createPipedrive(
      parseCrmSettings(
        { provider: "pipedrive", authType: "token", baseUrl: fake.url, maxConcurrency: 1 },
        { token: TOKEN },
      ),
    );
    await assert.rejects(
      pd.upsert("persons", "email", [{ email: "p0@example.com", name: "x" }]),
      /HTTP 503.*after 5 attempts/,
    );
  });
});
