/**
 * CRM faults through the real nodes (node-red-node-test-helper), the real clients
 * (axios, jsforce), the CRM fakes and a real PostgreSQL (issue 5, "Limits and faults"
 * and "Revoke"):
 *  - a run that exhausts its retries fails with the provider's own message and leaves
 *    the watermark where it was; once the fault is gone the next run moves exactly the
 *    records added meanwhile — HubSpot → PostgreSQL (every search answers 503) and
 *    PostgreSQL → HubSpot (every batch upsert answers 429 past the retry budget);
 *  - revoking a connection while its source runs stops the run, says so on the
 *    node's status, wipes the stored token and records who and why in the audit;
 *  - a Salesforce session expiring between two query pages is renewed by exactly one
 *    login and the run completes with every contact once (count + checksum).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Knex } from "knex";
import { allNodes, helper, useTempUserDir, waitForStatus, type HelperNode } from "../support/red";
import { PG_URL, configFromUrl, pgKnex, requireServer } from "../support/databases";
import { md5 } from "../support/customers";
import { sources } from "../../nodes/lib/sources";
import { closeStateStores, stateStoreFor } from "../../nodes/lib/state-store";
import { vaultFor } from "../../nodes/lib/crm/token-vault";
import { HubSpotFake, type HubSpotRecord } from "../fakes/hubspot";
import type { FakeRequest } from "../fakes/http-fake";
import { FakeSalesforce, sfNow } from "../fakes/salesforce";

const dist = path.resolve(__dirname, "..", "..", "nodes");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = (name: string) => require(path.join(dist, name, `${name}.js`)) as unknown;
const nodes = [...allNodes, load("crm-connection"), load("crm-source")];

interface Agent {
  post(url: string): Agent;
  send(body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}
const request = () => (helper as unknown as { request(): Agent }).request();

function pgDb() {
  const pg = configFromUrl(PG_URL);
  return {
    node: {
      id: "pgconn",
      type: "tributary-db-connection",
      client: "pg",
      host: pg.host,
      port: pg.port,
      database: pg.database,
    },
    credentials: { user: pg.user, password: pg.password },
  };
}

const isSearch = (r: FakeRequest) => r.method === "POST" && r.path.endsWith("/search");
const isBatchUpsert = (r: FakeRequest) =>
  r.method === "POST" && r.path === "/crm/v3/objects/contacts/batch/upsert";

describe("CRM runs that exhaust their retries keep their watermark (HubSpot fake, real PostgreSQL)", function () {
  this.timeout(180_000);
  const TOKEN = "pat-eu1-faults-token";
  let pg: Knex;
  let fake: HubSpotFake;
  let userDir = "";
  /** Faults are injected once, up front, and only match while this is set. */
  let outage: "none" | "search" | "upsert" = "none";

  before(async function () {
    pg = pgKnex();
    await requireServer(this, "PostgreSQL", pg);
    userDir = useTempUserDir();
    fake = new HubSpotFake({ token: TOKEN });
    await fake.start();
    // https://developers.hubspot.com/docs/api/error-handling: 5xx and 429 carry the
    // usual error body; these messages must reach the run summary.
    fake.injectFault(
      {
        kind: "status",
        status: 503,
        body: {
          status: "error",
          message: "The CRM search service is temporarily unavailable (maintenance window)",
          correlationId: "faults-503",
          category: "SERVICE_UNAVAILABLE",
        },
      },
      10_000,
      (r) => outage === "search" && isSearch(r),
    );
    fake.injectFault(
      {
        kind: "status",
        status: 429,
        retryAfter: "0",
        body: {
          status: "error",
          message: "You have reached your ten_secondly_rolling limit.",
          errorType: "RATE_LIMIT",
          correlationId: "faults-429",
          policyName: "TEN_SECONDLY_ROLLING",
        },
      },
      10_000,
      (r) => outage === "upsert" && isBatchUpsert(r),
    );
    await pg.raw("drop table if exists crm_faults_hs_contacts, crm_faults_out_people");
    await pg.raw(
      `create table crm_faults_hs_contacts (id text primary key, hs_object_id text, email text,
        firstname text, lastname text, lastmodifieddate timestamptz)`,
    );
    await pg.raw(
      `create table crm_faults_out_people (id bigint primary key, email text, firstname text,
        lastname text, updated_at timestamptz not null)`,
    );
    const db = pgDb();
    await helper.load(
      nodes,
      [
        {
          id: "hs",
          type: "tributary-crm-connection",
          provider: "hubspot",
          authType: "token",
          baseUrl: fake.url,
          maxConcurrency: 2,
        },
        db.node,
        {
          id: "hs-src",
          type: "tributary-crm-source",
          connection: "hs",
          object: "contacts",
          fields: ["email", "firstname", "lastname"],
          mode: "incremental",
          batchSize: 100,
          wires: [["pg-sink"], []],
        },
        {
          id: "pg-sink",
          type: "tributary-upsert",
          connection: "pgconn",
          table: "crm_faults_hs_contacts",
          keyColumns: ["id"],
          mode: "upsert",
          wires: [[], []],
        },
        {
          id: "pg-src",
          type: "tributary-db-source",
          connection: "pgconn",
          table: "crm_faults_out_people",
          keyColumns: ["id"],
          cursorColumn: "updated_at",
          mode: "incremental",
          batchSize: 150,
          wires: [["hs-sink"], []],
        },
        {
          id: "hs-sink",
          type: "tributary-upsert",
          target: "crm",
          crmConnection: "hs",
          table: "contacts",
          keyColumns: ["email"],
          columns: ["email", "firstname", "lastname"],
          mode: "upsert",
          wires: [[], []],
        },
      ],
      { hs: { token: TOKEN }, pgconn: db.credentials },
    );
  });

  after(async () => {
    outage = "none";
    await helper.unload();
    await closeStateStores();
    await fake?.stop();
    await pg?.destroy();
  });

  const watermarkOf = async (id: string) => (await stateStoreFor(userDir)).getWatermark(id);

  it("HubSpot → PostgreSQL: every search 503 → failed with HubSpot's message, watermark kept; then exactly the new contacts", async () => {
    const person = (i: number) => ({
      email: `fault${i}@example.com`,
      firstname: `F${i}`,
      lastname: `L${i}`,
    });
    fake.seed(
      "contacts",
      Array.from({ length: 250 }, (_, i) => person(i)),
      (i) => new Date(Date.UTC(2026, 2, 1) + Math.floor(i / 4)).toISOString(),
    );
    const first = await sources.get("hs-src")!.trigger();
    assert.equal(first.status, "succeeded", first.error);
    assert.equal(first.counts.read, 250);
    const before = await watermarkOf("hs-src");
    assert.ok(before, "run 1 stored no watermark");

    // New contacts arrive while HubSpot's search is down.
    const added = fake.seed(
      "contacts",
      Array.from({ length: 40 }, (_, i) => person(1000 + i)),
    );
    outage = "search";
    const searchesBefore = fake.requests("POST", "/crm/v3/objects/contacts/search").length;
    const failed = await sources.get("hs-src")!.trigger();
    outage = "none";
    assert.equal(failed.status, "failed");
    assert.match(failed.error ?? "", /HTTP 503/);
    assert.match(failed.error ?? "", /after 5 attempts/);
    assert.match(
      failed.error ?? "",
      /SERVICE_UNAVAILABLE: The CRM search service is temporarily unavailable \(maintenance window\)/,
    );
    assert.equal(failed.counts.read, 0);
    const searches = fake.requests("POST", "/crm/v3/objects/contacts/search").slice(searchesBefore);
    assert.equal(searches.length, 5, "the retry budget is 5 attempts");
    assert.ok(searches.every((s) => s.status === 503));
    assert.deepEqual(await watermarkOf("hs-src"), before, "the watermark moved");
    assert.equal(Number((await pg("crm_faults_hs_contacts").count({ n: "*" }))[0].n), 250);

    // The fault is gone: the next run moves exactly the 40 contacts added.
    const third = await sources.get("hs-src")!.trigger();
    assert.equal(third.status, "succeeded", third.error);
    assert.equal(third.counts.read, 40);
    assert.equal(third.counts.insert, 40);
    assert.equal(third.counts.update, 0);
    const rows = await pg("crm_faults_hs_contacts")
      .whereIn(
        "id",
        added.map((c) => String(c.id)),
      )
      .select("id", "email", "firstname", "lastname", "lastmodifieddate");
    const line = (c: HubSpotRecord) =>
      `${c.id}|${c.properties.email}|${c.properties.firstname}|${c.properties.lastname}|${c.properties.lastmodifieddate}`;
    assert.equal(
      md5(
        rows
          .map(
            (r) =>
              `${r.id}|${r.email}|${r.firstname}|${r.lastname}|${new Date(r.lastmodifieddate).toISOString()}`,
          )
          .sort()
          .join("\n"),
      ),
      md5(added.map(line).sort().join("\n")),
    );
    assert.equal(Number((await pg("crm_faults_hs_contacts").count({ n: "*" }))[0].n), 290);
    const after = await watermarkOf("hs-src");
    const last = added[added.length - 1];
    assert.equal(after?.position.cursor, last.properties.lastmodifieddate);
    assert.deepEqual(after?.position.key, [String(last.id)]);
  });

  it("PostgreSQL → HubSpot: every batch upsert 429 past the budget → failed with HubSpot's message, db-source watermark kept", async () => {
    await pg.raw(
      `insert into crm_faults_out_people
       select g, 'out' || g || '@example.com', 'Out' || g, 'Person', timestamptz '2026-05-01 00:00:00+00' + g * interval '1 ms'
       from generate_series(1, 200) g`,
    );
    const first = await sources.get("pg-src")!.trigger();
    assert.equal(first.status, "succeeded", first.error);
    assert.equal(first.counts.insert, 200);
    const before = await watermarkOf("pg-src");
    assert.ok(before, "run 1 stored no watermark");
    const contacts = fake.objects.contacts.size;

    await pg.raw(
      `insert into crm_faults_out_people
       select g, 'out' || g || '@example.com', 'Late' || g, 'Person', timestamptz '2026-05-02 00:00:00+00' + g * interval '1 ms'
       from generate_series(201, 230) g`,
    );
    outage = "upsert";
    const upsertsBefore = fake.requests("POST", "/crm/v3/objects/contacts/batch/upsert").length;
    const failed = await sources.get("pg-src")!.trigger();
    outage = "none";
    assert.equal(failed.status, "failed");
    assert.match(failed.error ?? "", /HTTP 429/);
    assert.match(failed.error ?? "", /You have reached your ten_secondly_rolling limit\./);
    assert.equal(failed.counts.insert + failed.counts.update, 0);
    const calls = fake
      .requests("POST", "/crm/v3/objects/contacts/batch/upsert")
      .slice(upsertsBefore);
    assert.equal(calls.length, 5, "the retry budget is 5 attempts");
    assert.ok(calls.every((c) => c.status === 429));
    assert.equal(fake.objects.contacts.size, contacts);
    assert.deepEqual(await watermarkOf("pg-src"), before, "the watermark moved");

    const third = await sources.get("pg-src")!.trigger();
    assert.equal(third.status, "succeeded", third.error);
    assert.equal(third.counts.read, 30);
    assert.equal(third.counts.insert, 30);
    assert.equal(third.counts.update, 0);
    assert.equal(fake.objects.contacts.size, contacts + 30);
    for (let g = 201; g <= 230; g += 1) {
      const c = fake.findBy("contacts", "email", `out${g}@example.com`);
      assert.ok(c, `out${g} missing`);
      assert.equal(c.properties.firstname, `Late${g}`);
      assert.equal(c.properties.lastname, "Person");
    }
    assert.equal(
      fake.findBy("contacts", "email", "out200@example.com")?.properties.firstname,
      "Out200",
    );
    assert.deepEqual((await watermarkOf("pg-src"))?.position.key, ["230"]);
  });
});

describe("Revoking a CRM connection stops the source running on it (HubSpot OAuth2 fake)", function () {
  this.timeout(120_000);
  const SECRET = "faults-credential-secret";
  const CONTACTS = 3000;
  let pg: Knex;
  let fake: HubSpotFake;
  let userDir = "";

  before(async function () {
    pg = pgKnex();
    await requireServer(this, "PostgreSQL", pg);
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-crm-revoke-"));
    helper.init(require.resolve("node-red"), { userDir, credentialSecret: SECRET });
    fake = new HubSpotFake({
      oauth: {
        clientId: "rv-client",
        clientSecret: "rv-client-secret",
        accessToken: "hs-rv-access",
        refreshToken: "hs-rv-refresh",
      },
    });
    await fake.start();
    fake.seed(
      "contacts",
      Array.from({ length: CONTACTS }, (_, i) => ({
        email: `rv${i}@example.com`,
        firstname: `R${i}`,
      })),
      (i) => new Date(Date.UTC(2026, 3, 1) + i).toISOString(),
    );
    const store = await stateStoreFor(userDir);
    await vaultFor(SECRET, store)
      .forConnection("hs-rv", "hubspot")
      .save({ accessToken: "hs-rv-access", refreshToken: "hs-rv-refresh" });
    await pg.raw("drop table if exists crm_faults_rv_contacts");
    await pg.raw(
      `create table crm_faults_rv_contacts (id text primary key, hs_object_id text, email text,
        firstname text, lastmodifieddate timestamptz)`,
    );
    const db = pgDb();
    await helper.load(
      nodes,
      [
        {
          id: "hs-rv",
          type: "tributary-crm-connection",
          provider: "hubspot",
          authType: "oauth2",
          baseUrl: fake.url,
          maxConcurrency: 2,
        },
        db.node,
        {
          id: "rv-src",
          type: "tributary-crm-source",
          connection: "hs-rv",
          object: "contacts",
          fields: ["email", "firstname"],
          mode: "incremental",
          batchSize: 100,
          wires: [["rv-sink"], []],
        },
        {
          id: "rv-sink",
          type: "tributary-upsert",
          connection: "pgconn",
          table: "crm_faults_rv_contacts",
          keyColumns: ["id"],
          mode: "upsert",
          wires: [[], []],
        },
      ],
      {
        "hs-rv": { clientId: "rv-client", clientSecret: "rv-client-secret" },
        pgconn: db.credentials,
      },
    );
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
    await fake?.stop();
    await pg?.destroy();
  });

  it("POST /tributary/connections/:id/revoke mid-run: the run fails naming the revoke, status, token gone, audit", async () => {
    const src = helper.getNode("rv-src") as HelperNode;
    // The HubSpot fake has no refresh-token endpoint; answer as HubSpot documents
    // (DELETE /oauth/v1/refresh-tokens/:token → 204, here 200 with an empty body).
    fake.injectFault(
      { kind: "status", status: 200, body: {} },
      1,
      (r) => r.method === "DELETE" && r.path === "/oauth/v1/refresh-tokens/hs-rv-refresh",
    );
    fake.latencyMs = 150; // 30 searches: ~5 s, time enough to revoke in the middle
    const searches = () => fake.requests("POST", "/crm/v3/objects/contacts/search").length;
    const running = sources.get("rv-src")!.trigger();
    for (let i = 0; i < 400 && searches() < 3; i += 1) await new Promise((r) => setTimeout(r, 10));
    assert.ok(searches() >= 3, "the run did not get under way");

    const revoked = await request()
      .post("/tributary/connections/hs-rv/revoke")
      .send({ reason: "laptop with the app's secret was stolen" });
    const searchesAtRevoke = searches();
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.wiped, true);
    assert.deepEqual(revoked.body.atProvider, { status: "revoked" });

    const summary = await running;
    fake.latencyMs = 0;
    assert.equal(summary.status, "failed");
    assert.match(
      summary.error ?? "",
      /the connection was revoked \(revoked by anonymous: laptop with the app's secret was stolen\)/,
    );
    assert.ok(summary.counts.read < CONTACTS, `read ${summary.counts.read}: not stopped`);
    // At most the search already on the wire (and one read ahead) after the revoke.
    assert.ok(searches() <= searchesAtRevoke + 2, "the source kept reading after the revoke");

    await waitForStatus(src, (t) => /^connection revoked: revoked by anonymous/.test(t));
    const last = String((src.status.lastCall?.args[0] as { text?: string })?.text ?? "");
    // The run's summary then replaces it, still naming the revoke.
    assert.match(last, /^failed: the connection was revoked \(revoked by anonymous/);

    const store = await stateStoreFor(userDir);
    assert.equal(await store.getToken("hs-rv"), undefined);
    const audit = await store.listConnectionAudit("hs-rv");
    assert.equal(audit.length, 1);
    assert.equal(audit[0].action, "revoked");
    assert.equal(audit[0].by, "anonymous");
    assert.equal(audit[0].reason, "laptop with the app's secret was stolen");

    // The next run does not start on a revoked connection.
    const next = await sources.get("rv-src")!.trigger();
    assert.equal(next.status, "failed");
    assert.match(next.error ?? "", /revoked/);
    assert.match(next.error ?? "", /click Connect/);
  });
});

describe("Salesforce → PostgreSQL: a session expiring between query pages (Salesforce fake)", function () {
  this.timeout(120_000);
  const CONTACTS = 600;
  let pg: Knex;
  let sf: FakeSalesforce;

  before(async function () {
    pg = pgKnex();
    await requireServer(this, "PostgreSQL", pg);
    useTempUserDir();
    sf = new FakeSalesforce();
    sf.queryBatchSize = 200; // a LIMIT 500 query arrives in three pages (nextRecordsUrl)
    await sf.start();
    const base = Date.UTC(2026, 4, 1);
    for (let i = 0; i < CONTACTS; i += 1) {
      sf.insert("Contact", {
        FirstName: `Sf${i}`,
        LastName: `Person${i % 37}`,
        Email: `sf${i}@example.com`,
        // Ties of five on one SystemModstamp, some across page boundaries.
        SystemModstamp: sfNow(base + Math.floor(i / 5) * 1000),
      });
    }
    await pg.raw("drop table if exists crm_faults_sf_contacts");
    await pg.raw(
      `create table crm_faults_sf_contacts ("Id" text primary key, "FirstName" text,
        "LastName" text, "Email" text, "SystemModstamp" timestamptz)`,
    );
    const db = pgDb();
    await helper.load(
      nodes,
      [
        {
          id: "sf",
          type: "tributary-crm-connection",
          provider: "salesforce",
          authType: "password",
          baseUrl: sf.url,
          maxConcurrency: 2,
        },
        db.node,
        {
          id: "sf-src",
          type: "tributary-crm-source",
          connection: "sf",
          object: "Contact",
          fields: ["FirstName", "LastName", "Email"],
          mode: "incremental",
          batchSize: 500,
          wires: [["sf-sink"], []],
        },
        {
          id: "sf-sink",
          type: "tributary-upsert",
          connection: "pgconn",
          table: "crm_faults_sf_contacts",
          keyColumns: ["Id"],
          mode: "upsert",
          wires: [[], []],
        },
      ],
      {
        sf: { username: sf.username, password: sf.password, securityToken: sf.securityToken },
        pgconn: db.credentials,
      },
    );
  });

  after(async () => {
    if (sf) sf.onRequest = null;
    await helper.unload();
    await closeStateStores();
    await sf?.stop();
    await pg?.destroy();
  });

  it("renews the session with one login and copies all 600 contacts exactly once", async () => {
    let pages = 0;
    let loginsAtExpiry = -1;
    sf.onRequest = (req) => {
      if (req.method !== "GET" || !/\/services\/data\/v[\d.]+\/query(\/|$)/.test(req.path)) return;
      pages += 1;
      // The third page is asked for: the session dies after the second was served.
      if (pages === 3) {
        sf.expireSessions();
        loginsAtExpiry = sf.logins.length;
      }
    };
    const summary = await sources.get("sf-src")!.trigger();
    sf.onRequest = null;
    assert.equal(summary.status, "succeeded", summary.error);
    assert.ok(loginsAtExpiry >= 1, "the session never expired mid-run");
    assert.equal(sf.logins.length, loginsAtExpiry + 1, "not exactly one extra login");
    const refused = sf.log.filter((e) => e.status === 401);
    assert.equal(refused.length, 1);
    // It was the third page of the first read (nextRecordsUrl at offset 400), re-sent after the login.
    assert.match(refused[0].path, /\/query\/01g[0-9a-f]+-400$/);
    const queryPages = sf.log.filter((e) => /\/query(\/|$)/.test(e.path) && e.status === 200);
    assert.deepEqual(
      queryPages.map((e) => e.path.replace(/.*\/query/, "/query").replace(/01g[0-9a-f]+/, "L")),
      ["/query", "/query/L-200", "/query/L-400", "/query"],
    );
    assert.equal(summary.counts.read, CONTACTS);
    assert.equal(summary.counts.insert, CONTACTS);
    assert.equal(summary.counts.update, 0);

    const expected = [...sf.objects.get("Contact")!.records.values()]
      .map(
        (r) =>
          `${r.Id}|${r.FirstName}|${r.LastName}|${r.Email}|${new Date(String(r.SystemModstamp).replace("+0000", "Z")).toISOString()}`,
      )
      .sort()
      .join("\n");
    const rows = await pg("crm_faults_sf_contacts").select("*");
    assert.equal(rows.length, CONTACTS);
    assert.equal(new Set(rows.map((r) => r.Id)).size, CONTACTS);
    const actual = rows
      .map(
        (r) =>
          `${r.Id}|${r.FirstName}|${r.LastName}|${r.Email}|${new Date(r.SystemModstamp).toISOString()}`,
      )
      .sort()
      .join("\n");
    assert.equal(md5(actual), md5(expected));
  });
});
