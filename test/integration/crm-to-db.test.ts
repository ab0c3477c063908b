/**
 * CRM ⇄ database through the real nodes (node-red-node-test-helper), the real axios
 * client and the HubSpot fake, and a real PostgreSQL:
 *  - HubSpot contacts → PostgreSQL, incremental: 12,500 contacts (ties of thousands on
 *    one timestamp) pass the search endpoint's 10,000-result cap with none lost or
 *    doubled; the next run moves only the contacts changed since;
 *  - PostgreSQL → HubSpot contacts through the upsert node, keyed by email.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Knex } from "knex";
import { allNodes, helper, useTempUserDir, type HelperNode } from "../support/red";
import { PG_URL, configFromUrl, pgKnex, requireServer } from "../support/databases";
import { md5 } from "../support/customers";
import { sources } from "../../nodes/lib/sources";
import { closeStateStores, stateStoreFor } from "../../nodes/lib/state-store";
import { vaultFor } from "../../nodes/lib/crm/token-vault";
import { HubSpotFake } from "../fakes/hubspot";

const TOKEN = "pat-eu1-integration-token";
const CONTACTS = 12_500;
const dist = path.resolve(__dirname, "..", "..", "nodes");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const crmConnectionNode = require(
  path.join(dist, "crm-connection", "crm-connection.js"),
) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const crmSourceNode = require(path.join(dist, "crm-source", "crm-source.js")) as unknown;
const nodes = [...allNodes, crmConnectionNode, crmSourceNode];

function flow(fakeUrl: string) {
  const pg = configFromUrl(PG_URL);
  return {
    nodes: [
      {
        id: "hs",
        type: "tributary-crm-connection",
        provider: "hubspot",
        authType: "token",
        baseUrl: fakeUrl,
        maxConcurrency: 4,
      },
      {
        id: "pgconn",
        type: "tributary-db-connection",
        client: "pg",
        host: pg.host,
        port: pg.port,
        database: pg.database,
      },
      // HubSpot → PostgreSQL
      {
        id: "hs-src",
        type: "tributary-crm-source",
        connection: "hs",
        object: "contacts",
        fields: ["email", "firstname", "lastname"],
        mode: "incremental",
        batchSize: 1000,
        wires: [["pg-sink"], []],
      },
      {
        id: "pg-sink",
        type: "tributary-upsert",
        connection: "pgconn",
        table: "crm_hs_contacts",
        keyColumns: ["id"],
        mode: "upsert",
        wires: [[], []],
      },
      // PostgreSQL → HubSpot
      {
        id: "pg-src",
        type: "tributary-db-source",
        connection: "pgconn",
        table: "crm_out_people",
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
        mode: "upsert",
        wires: [[], ["failed"]],
      },
      { id: "failed", type: "helper" },
    ],
    credentials: {
      hs: { token: TOKEN },
      pgconn: { user: pg.user, password: pg.password },
    },
  };
}

describe("HubSpot ⇄ PostgreSQL through the nodes (HubSpot fake, real PostgreSQL)", function () {
  this.timeout(180_000);
  let pg: Knex;
  let fake: HubSpotFake;
  let userDir = "";

  before(async function () {
    pg = pgKnex();
    await requireServer(this, "PostgreSQL", pg);
    userDir = useTempUserDir();
    fake = new HubSpotFake({ token: TOKEN });
    await fake.start();
    await pg.raw("drop table if exists crm_hs_contacts, crm_out_people");
    await pg.raw(
      `create table crm_hs_contacts (id text primary key, hs_object_id text, email text,
        firstname text, lastname text, lastmodifieddate timestamptz)`,
    );
    await pg.raw(
      `create table crm_out_people (id bigint primary key, email text, firstname text,
        lastname text, updated_at timestamptz not null)`,
    );
    const { nodes: flowNodes, credentials } = flow(fake.url);
    await helper.load(nodes, flowNodes, credentials);
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
    await fake?.stop();
    await pg?.destroy();
  });

  describe("HubSpot → PostgreSQL", () => {
    before(() => {
      const person = (i: number) => ({
        email: `contact${i}@example.com`,
        firstname: `First${i}`,
        lastname: `Last${i % 100}`,
      });
      const people = (from: number, n: number) =>
        Array.from({ length: n }, (_, i) => person(from + i));
      // An import: 4,000 contacts share one timestamp; the rest a few per millisecond.
      fake.seed("contacts", people(0, 3000), (i) =>
        new Date(Date.UTC(2026, 0, 1) + Math.floor(i / 3)).toISOString(),
      );
      fake.seed("contacts", people(3000, 4000), "2026-01-02T08:00:00.000Z");
      fake.seed("contacts", people(7000, CONTACTS - 7000), (i) =>
        new Date(Date.UTC(2026, 0, 3) + i * 11).toISOString(),
      );
    });

    it("copies all 12,500 contacts on the first run, none lost or doubled", async () => {
      const summary = await sources.get("hs-src")!.trigger();
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.read, CONTACTS);
      assert.equal(summary.counts.insert, CONTACTS);
      assert.equal(summary.counts.batches, 13);
      const rows = await pg("crm_hs_contacts").select(
        "id",
        "email",
        "firstname",
        "lastmodifieddate",
      );
      assert.equal(rows.length, CONTACTS);
      const expected = new Map(
        [...fake.objects.contacts.values()].map((c) => [String(c.id), c.properties]),
      );
      for (const row of rows) {
        const props = expected.get(row.id);
        assert.ok(props, `unknown id ${row.id}`);
        assert.equal(row.email, props.email);
        assert.equal(row.firstname, props.firstname);
        assert.equal(new Date(row.lastmodifieddate).toISOString(), props.lastmodifieddate);
      }
      const watermark = await (await stateStoreFor(userDir)).getWatermark("hs-src");
      const last = [...fake.objects.contacts.values()].sort((a, b) => b.id - a.id)[0];
      assert.equal(watermark?.position.cursor, last.properties.lastmodifieddate);
      assert.deepEqual(watermark?.position.key, [String(last.id)]);
    });

    it("moves only the contacts changed since on the next run", async () => {
      const ids = [...fake.objects.contacts.keys()];
      const changed = [ids[5], ids[3500], ids[3501], ids[12_000]];
      for (const id of changed) fake.touch("contacts", id, { firstname: `Changed${id}` });
      const summary = await sources.get("hs-src")!.trigger();
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.read, changed.length);
      assert.equal(summary.counts.update, changed.length);
      assert.equal(summary.counts.insert, 0);
      const rows = await pg("crm_hs_contacts")
        .whereIn("id", changed.map(String))
        .select("id", "firstname");
      assert.deepEqual(
        rows.map((r) => r.firstname).sort(),
        changed.map((id) => `Changed${id}`).sort(),
      );
      assert.equal(Number((await pg("crm_hs_contacts").count({ n: "*" }))[0].n), CONTACTS);
    });

    it("reads nothing when nothing changed", async () => {
      const summary = await sources.get("hs-src")!.trigger();
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.read, 0);
    });
  });

  describe("PostgreSQL → HubSpot (upsert node, key email)", () => {
    const contactCount = () => fake.objects.contacts.size;
    let existing = 0;

    before(async () => {
      existing = contactCount();
      await pg.raw(
        `insert into crm_out_people
         select g, 'db' || g || '@example.com', 'Db' || g, 'Person', timestamptz '2026-05-01 00:00:00+00' + g * interval '1 ms'
         from generate_series(1, 400) g`,
      );
      // Ten people HubSpot already has (from the first sync): they must be updated, not doubled.
      await pg.raw(
        `insert into crm_out_people
         select 1000 + g, 'contact' || g || '@example.com', 'FromDb' || g, 'Person', timestamptz '2026-05-02 00:00:00+00'
         from generate_series(0, 9) g`,
      );
    });

    it("creates new contacts and updates existing ones by email, 100 a call", async () => {
      const summary = await sources.get("pg-src")!.trigger();
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.read, 410);
      assert.equal(summary.counts.insert, 400);
      assert.equal(summary.counts.update, 10);
      assert.equal(contactCount(), existing + 400);
      assert.equal(
        fake.findBy("contacts", "email", "db250@example.com")?.properties.firstname,
        "Db250",
      );
      assert.equal(
        fake.findBy("contacts", "email", "contact7@example.com")?.properties.firstname,
        "FromDb7",
      );
      const calls = fake.requests("POST", "/crm/v3/objects/contacts/batch/upsert");
      assert.ok(calls.every((c) => (c.body as { inputs: unknown[] }).inputs.length <= 100));
      // The database's own id and cursor are not HubSpot properties: never sent.
      const sent = (calls[0].body as { inputs: Array<{ properties: Record<string, string> }> })
        .inputs[0];
      assert.deepEqual(Object.keys(sent.properties).sort(), ["email", "firstname", "lastname"]);
      const sink = helper.getNode("hs-sink") as HelperNode;
      assert.ok(sink.warn.args.some((a) => /not written: .*id/.test(String(a[0]))));
    });

    it("a row HubSpot rejects leaves on output 2; the rest is written and the run says so", async () => {
      await pg.raw(
        `update crm_out_people set firstname = 'Again' || id, updated_at = timestamptz '2026-06-01 00:00:00+00' + id * interval '1 ms' where id between 1 and 5`,
      );
      await pg.raw(
        `insert into crm_out_people values (9999, 'broken-address', 'Bad', 'Row', timestamptz '2026-06-02 00:00:00+00')`,
      );
      const failedNode = helper.getNode("failed") as HelperNode;
      const failures: Array<Record<string, unknown>> = [];
      failedNode.on("input", (msg: Record<string, unknown>) => failures.push(msg));
      const summary = await sources.get("pg-src")!.trigger();
      assert.equal(summary.status, "failed");
      assert.match(summary.error ?? "", /1 record\(s\) failed/);
      assert.equal(summary.counts.read, 6);
      assert.equal(summary.counts.update, 5);
      assert.equal(summary.counts.failed, 1);
      // Node-RED delivers output 2 asynchronously, after the batch settled.
      for (let i = 0; i < 100 && failures.length === 0; i += 1)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(failures.length, 1);
      const payload = failures[0].payload as Array<Record<string, unknown>>;
      assert.equal(payload[0].email, "broken-address");
      assert.match(
        String((failures[0].failures as Array<{ error: string }>)[0].error),
        /not a valid email/,
      );
      assert.equal(
        fake.findBy("contacts", "email", "db3@example.com")?.properties.firstname,
        "Again3",
      );
    });
  });
});

describe("HubSpot (OAuth2) → PostgreSQL: a token expiring mid-run and a 429 storm", function () {
  this.timeout(120_000);
  const SECRET = "integration-credential-secret";
  const COMPANIES = 1500;
  let pg: Knex;
  let fake: HubSpotFake;
  let userDir = "";

  before(async function () {
    pg = pgKnex();
    await requireServer(this, "PostgreSQL", pg);
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-crm-oauth-"));
    helper.init(require.resolve("node-red"), { userDir, credentialSecret: SECRET });
    fake = new HubSpotFake({
      oauth: {
        clientId: "app-client",
        clientSecret: "app-client-secret",
        accessToken: "hs-access-initial",
        refreshToken: "hs-refresh-initial",
        rotate: true,
      },
    });
    await fake.start();
    fake.seed(
      "companies",
      Array.from({ length: COMPANIES }, (_, i) => ({
        name: `Company ${i}`,
        domain: `c${i}.example`,
      })),
      (i) => new Date(Date.UTC(2026, 1, 1) + Math.floor(i / 50) * 1000).toISOString(),
    );
    // Tokens as Connect would have stored them: sealed in the state store.
    const store = await stateStoreFor(userDir);
    await vaultFor(SECRET, store)
      .forConnection("hs-oauth", "hubspot")
      .save({ accessToken: "hs-access-initial", refreshToken: "hs-refresh-initial" });
    await pg.raw("drop table if exists crm_hs_companies");
    await pg.raw(
      `create table crm_hs_companies (id text primary key, hs_object_id text, name text,
        domain text, hs_lastmodifieddate timestamptz)`,
    );
    const pgc = configFromUrl(PG_URL);
    await helper.load(
      nodes,
      [
        {
          id: "hs-oauth",
          type: "tributary-crm-connection",
          provider: "hubspot",
          authType: "oauth2",
          baseUrl: fake.url,
          maxConcurrency: 2,
        },
        {
          id: "pgconn",
          type: "tributary-db-connection",
          client: "pg",
          host: pgc.host,
          port: pgc.port,
          database: pgc.database,
        },
        {
          id: "co-src",
          type: "tributary-crm-source",
          connection: "hs-oauth",
          object: "companies",
          fields: ["name", "domain"],
          mode: "incremental",
          batchSize: 250,
          wires: [["co-sink"], []],
        },
        {
          id: "co-sink",
          type: "tributary-upsert",
          connection: "pgconn",
          table: "crm_hs_companies",
          keyColumns: ["id"],
          mode: "upsert",
          wires: [[], []],
        },
      ],
      {
        "hs-oauth": { clientId: "app-client", clientSecret: "app-client-secret" },
        pgconn: { user: pgc.user, password: pgc.password },
      },
    );
  });

  after(async () => {
    await helper.unload();
    await closeStateStores();
    await fake?.stop();
    await pg?.destroy();
  });

  it("refreshes the token once, waits out every 429, and copies every company exactly", async () => {
    let searches = 0;
    fake.onRequest = (req) => {
      if (!req.path.endsWith("/search")) return;
      searches += 1;
      if (searches === 4) fake.expireAccessTokens(); // the token dies mid-run
      // A storm: every third search after the tenth is refused once with Retry-After.
      if (searches > 10 && searches % 3 === 0 && searches < 30)
        fake.rateLimit(1, 1, (r) => r.path.endsWith("/search"));
    };
    const started = Date.now();
    const summary = await sources.get("co-src")!.trigger();
    fake.onRequest = null;
    assert.equal(summary.status, "succeeded", summary.error);
    assert.equal(summary.counts.read, COMPANIES);
    assert.equal(summary.counts.insert, COMPANIES);
    const rateLimited = fake.log.filter((r) => r.status === 429).length;
    assert.ok(rateLimited >= 5, `only ${rateLimited} 429s`);
    assert.ok(Date.now() - started >= rateLimited * 900, "Retry-After was not waited for");
    assert.equal(fake.log.filter((r) => r.path === "/oauth/v1/token").length, 1);
    assert.equal(fake.log.filter((r) => r.status === 401).length, 1);

    // Count and checksum: the table holds exactly the fake's companies.
    const expected = [...fake.objects.companies.values()]
      .map(
        (c) =>
          `${c.id}|${c.properties.name}|${c.properties.domain}|${c.properties.hs_lastmodifieddate}`,
      )
      .sort()
      .join("\n");
    const rows = await pg("crm_hs_companies").select("id", "name", "domain", "hs_lastmodifieddate");
    const actual = rows
      .map((r) => `${r.id}|${r.name}|${r.domain}|${new Date(r.hs_lastmodifieddate).toISOString()}`)
      .sort()
      .join("\n");
    assert.equal(rows.length, COMPANIES);
    assert.equal(md5(actual), md5(expected));

    // The rotated refresh token was stored at once, sealed: not readable in the row.
    const row = await (await stateStoreFor(userDir)).getToken("hs-oauth");
    assert.ok(row);
    assert.equal(fake.currentRefreshToken, "hs-refresh-1");
    assert.ok(!row.sealed.includes("hs-refresh-1") && !row.sealed.includes("hs-access-1"));
    const opened = await vaultFor(SECRET, await stateStoreFor(userDir))
      .forConnection("hs-oauth", "hubspot")
      .load();
    assert.equal(opened?.refreshToken, "hs-refresh-1");
  });
});
