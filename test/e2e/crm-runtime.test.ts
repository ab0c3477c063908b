/**
 * The CRM nodes in the hosted runtime, as a user runs them: `tributary start` in a
 * child process, a flow deployed through the admin API, injects clicked, runs read
 * back from the management API; the Salesforce and HubSpot fakes run in this process
 * and a real PostgreSQL holds the tables.
 *  - Salesforce Contacts → PostgreSQL (password login), then only the changes;
 *  - PostgreSQL → HubSpot contacts, upserted by email;
 *  - HubSpot (OAuth2, tokens sealed in the state store) → PostgreSQL while the access
 *    token expires mid-run and a 429 storm passes: nothing lost or doubled (count +
 *    checksum), the refreshed tokens stored sealed;
 * and no token or password ever reaches the runtime's output.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { Knex } from "knex";
import { PG_URL, configFromUrl, pgKnex, requireServer } from "../support/databases";
import { md5 } from "../support/customers";
import { StateStore } from "../../nodes/lib/state-store";
import { vaultFor } from "../../nodes/lib/crm/token-vault";
import { FakeSalesforce, sfNow } from "../fakes/salesforce";
import { HubSpotFake } from "../fakes/hubspot";
import { cli, json, kill, spawnUntil, tempDir, waitFor, type Started } from "./support";

const ADMIN_PASSWORD = "e2e-crm-admin-pass";
const CREDENTIAL_SECRET = "e2e-crm-credential-secret-7f3a";
const HS_PRIVATE_TOKEN = "pat-eu1-e2e-runtime-token-9c41";
const HS_CLIENT_ID = "e2e-app-client";
const HS_CLIENT_SECRET = "e2e-app-client-secret-55d2";
const HS_ACCESS = "hs-access-initial-e2e-0b7e";
const HS_REFRESH = "hs-refresh-initial-e2e-31aa";
const SF_CONTACTS = 300;
const PEOPLE = 250;
const HS_CONTACTS = 1_500;

interface Run {
  runId: string;
  sourceId: string;
  status: string;
  error?: string;
  counts: { read: number; insert: number; update: number; failed: number; batches: number };
}

function count(rows: Array<Record<string, unknown>>): number {
  return Number(rows[0].n);
}

describe("CRM syncs in the hosted runtime (tributary start, CRM fakes, PostgreSQL)", function () {
  this.timeout(180_000);
  let pg: Knex;
  let sf: FakeSalesforce;
  let hs: HubSpotFake;
  let hso: HubSpotFake;
  let server: Started | undefined;
  let userDir = "";
  let adminToken = "";
  /** Every Bearer token the OAuth HubSpot fake saw: none may leak. */
  const hsoBearers = new Set<string>();

  const auth = () => ({
    authorization: `Bearer ${adminToken}`,
    "content-type": "application/json",
  });

  async function runs(source: string): Promise<Run[]> {
    const r = await json(`${server!.url}/tributary/runs?source=${source}&limit=100`, {
      headers: auth(),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return (r.body as { runs: Run[] }).runs;
  }

  /** Clicks the inject and waits for the source's new run to finish. */
  async function trigger(inject: string, source: string, ms = 120_000): Promise<Run> {
    const known = new Set((await runs(source)).map((r) => r.runId));
    // 404 until the inject node has started after the deploy.
    await waitFor(
      `the inject ${inject} to answer`,
      async () =>
        (await json(`${server!.url}/inject/${inject}`, { method: "POST", headers: auth() }))
          .status === 200,
    );
    return waitFor(
      `a finished run of ${source}`,
      async () => (await runs(source)).find((r) => !known.has(r.runId) && r.status !== "running"),
      ms,
    );
  }

  before(async function () {
    pg = pgKnex();
    await requireServer(this, "PostgreSQL", pg);

    sf = new FakeSalesforce();
    hs = new HubSpotFake({ token: HS_PRIVATE_TOKEN });
    hso = new HubSpotFake({
      oauth: {
        clientId: HS_CLIENT_ID,
        clientSecret: HS_CLIENT_SECRET,
        accessToken: HS_ACCESS,
        refreshToken: HS_REFRESH,
        rotate: true,
      },
    });
    await Promise.all([sf.start(), hs.start(), hso.start()]);
    hso.onRequest = (req) => {
      const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ""))?.[1];
      if (bearer) hsoBearers.add(bearer);
    };

    await pg.raw("drop table if exists e2e_sf_contacts, e2e_out_people, e2e_hs_contacts");
    await pg.raw(
      `create table e2e_sf_contacts (id text primary key, first_name text, last_name text,
        email text, modified_at timestamptz)`,
    );
    await pg.raw(
      `create table e2e_out_people (id bigint primary key, email text not null, firstname text,
        lastname text, updated_at timestamptz not null)`,
    );
    await pg.raw(
      `create table e2e_hs_contacts (id text primary key, hs_object_id text, email text,
        firstname text, lastname text, lastmodifieddate timestamptz)`,
    );

    // Tokens as Connect would have stored them, sealed with the runtime's secret in
    // the state store of the user directory, before the runtime starts.
    userDir = path.join(tempDir("tributary-e2e-crm-"), "user");
    fs.mkdirSync(userDir, { recursive: true });
    const store = await StateStore.open({ file: path.join(userDir, "tributary-state.sqlite") });
    try {
      await vaultFor(CREDENTIAL_SECRET, store)
        .forConnection("crm_hso", "hubspot")
        .save({ accessToken: HS_ACCESS, refreshToken: HS_REFRESH });
    } finally {
      await store.close();
    }

    server = await spawnUntil(
      [cli, "start"],
      {
        PORT: "0",
        TRIBUTARY_USER_DIR: userDir,
        TRIBUTARY_ADMIN_PASSWORD: ADMIN_PASSWORD,
        TRIBUTARY_CREDENTIAL_SECRET: CREDENTIAL_SECRET,
        TRIBUTARY_STATE_URL: "",
        NODE_ENV: "",
      },
      /Tributary is running: (http:\/\/[^/\s]+)\//,
    );
    const login = await json(`${server.url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        client_id: "node-red-admin",
        grant_type: "password",
        scope: "*",
        username: "admin",
        password: ADMIN_PASSWORD,
      }),
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    adminToken = (login.body as { access_token: string }).access_token;

    const p = configFromUrl(PG_URL);
    const flow = [
      { id: "crm_tab", type: "tab", label: "CRM e2e" },
      {
        id: "crm_pg",
        type: "tributary-db-connection",
        z: "crm_tab",
        client: "pg",
        host: p.host,
        port: p.port,
        database: p.database,
        credentials: { user: p.user, password: p.password },
      },
      // (1) Salesforce Contacts → PostgreSQL
      {
        id: "crm_sf",
        type: "tributary-crm-connection",
        z: "crm_tab",
        provider: "salesforce",
        authType: "password",
        baseUrl: sf.url,
        maxConcurrency: 4,
        credentials: {
          username: sf.username,
          password: sf.password,
          securityToken: sf.securityToken,
        },
      },
      {
        id: "sf_inject",
        type: "inject",
        z: "crm_tab",
        props: [],
        repeat: "",
        once: false,
        wires: [["sf_src"]],
      },
      {
        id: "sf_src",
        type: "tributary-crm-source",
        z: "crm_tab",
        connection: "crm_sf",
        object: "Contact",
        fields: ["Id", "FirstName", "LastName", "Email", "SystemModstamp"],
        mode: "incremental",
        batchSize: 100,
        maxInFlight: 2,
        settleTimeout: 300,
        lookback: 0,
        wires: [["sf_tx"], []],
      },
      {
        id: "sf_tx",
        type: "tributary-transform",
        z: "crm_tab",
        mappings: [
          { target: "id", source: "Id", type: "string" },
          { target: "first_name", source: "FirstName", type: "string" },
          { target: "last_name", source: "LastName", type: "string" },
          { target: "email", expression: "$lowercase(Email)", type: "string" },
          { target: "modified_at", source: "SystemModstamp", type: "date" },
        ],
        dropUnmapped: true,
        schema: "",
        wires: [["sf_up"], []],
      },
      {
        id: "sf_up",
        type: "tributary-upsert",
        z: "crm_tab",
        target: "db",
        connection: "crm_pg",
        table: "e2e_sf_contacts",
        keyColumns: ["id"],
        mode: "upsert",
        wires: [[], []],
      },
      // (2) PostgreSQL → HubSpot contacts by email (private-app token)
      {
        id: "crm_hs",
        type: "tributary-crm-connection",
        z: "crm_tab",
        provider: "hubspot",
        authType: "token",
        baseUrl: hs.url,
        maxConcurrency: 4,
        credentials: { token: HS_PRIVATE_TOKEN },
      },
      {
        id: "out_inject",
        type: "inject",
        z: "crm_tab",
        props: [],
        repeat: "",
        once: false,
        wires: [["out_src"]],
      },
      {
        id: "out_src",
        type: "tributary-db-source",
        z: "crm_tab",
        connection: "crm_pg",
        table: "e2e_out_people",
        keyColumns: ["id"],
        cursorColumn: "updated_at",
        mode: "incremental",
        batchSize: 120,
        wires: [["out_up"], []],
      },
      {
        id: "out_up",
        type: "tributary-upsert",
        z: "crm_tab",
        target: "crm",
        connection: "",
        crmConnection: "crm_hs",
        table: "contacts",
        keyColumns: ["email"],
        mode: "upsert",
        wires: [[], []],
      },
      // (3) HubSpot (OAuth2) → PostgreSQL
      {
        id: "crm_hso",
        type: "tributary-crm-connection",
        z: "crm_tab",
        provider: "hubspot",
        authType: "oauth2",
        baseUrl: hso.url,
        maxConcurrency: 2,
        credentials: { clientId: HS_CLIENT_ID, clientSecret: HS_CLIENT_SECRET },
      },
      {
        id: "hso_inject",
        type: "inject",
        z: "crm_tab",
        props: [],
        repeat: "",
        once: false,
        wires: [["hso_src"]],
      },
      {
        id: "hso_src",
        type: "tributary-crm-source",
        z: "crm_tab",
        connection: "crm_hso",
        object: "contacts",
        fields: ["email", "firstname", "lastname"],
        mode: "incremental",
        batchSize: 250,
        maxInFlight: 2,
        settleTimeout: 300,
        lookback: 0,
        wires: [["hso_up"], []],
      },
      {
        id: "hso_up",
        type: "tributary-upsert",
        z: "crm_tab",
        target: "db",
        connection: "crm_pg",
        table: "e2e_hs_contacts",
        keyColumns: ["id"],
        mode: "upsert",
        wires: [[], []],
      },
    ];
    const deploy = await json(`${server.url}/flows`, {
      method: "POST",
      headers: { ...auth(), "Node-RED-Deployment-Type": "full" },
      body: JSON.stringify(flow),
    });
    assert.ok([200, 204].includes(deploy.status), JSON.stringify(deploy.body));
    // Deploying returns before the new flows have started: wait for the sources.
    await waitFor("the CRM sources to start", async () => {
      const list = await json(`${server!.url}/tributary/sources`, { headers: auth() });
      const ids = ((list.body as { sources?: Array<{ id: string }> }).sources ?? []).map(
        (s) => s.id,
      );
      return ["sf_src", "out_src", "hso_src"].every((id) => ids.includes(id));
    });
  });

  after(async () => {
    kill(server?.child);
    await Promise.all([sf?.stop(), hs?.stop(), hso?.stop()]);
    await pg?.destroy();
  });

  describe("Salesforce Contacts → PostgreSQL, incremental", () => {
    before(() => {
      // A day ago, a few contacts per millisecond so ties cross batch boundaries.
      const base = Date.now() - 86_400_000;
      for (let i = 1; i <= SF_CONTACTS; i++) {
        sf.insert("Contact", {
          FirstName: `First${i}`,
          LastName: `Last${i}`,
          Email: `Sf${i}.Person@Example.COM`,
          SystemModstamp: sfNow(base + Math.floor(i / 3)),
        });
      }
    });

    it("copies every contact on the first run, logged in with username + password + security token", async () => {
      const run = await trigger("sf_inject", "sf_src");
      assert.equal(run.status, "succeeded", run.error);
      assert.equal(run.counts.read, SF_CONTACTS);
      assert.equal(run.counts.insert, SF_CONTACTS);
      assert.equal(run.counts.batches, SF_CONTACTS / 100);
      assert.equal(count(await pg("e2e_sf_contacts").count({ n: "*" })), SF_CONTACTS);
      const rows = new Map(
        (await pg("e2e_sf_contacts").select("*")).map((r: Record<string, unknown>) => [r.id, r]),
      );
      for (const record of sf.objects.get("Contact")!.records.values()) {
        const row = rows.get(record.Id) as Record<string, unknown> | undefined;
        assert.ok(row, `contact ${record.Id} is missing`);
        assert.equal(row.first_name, record.FirstName);
        assert.equal(row.last_name, record.LastName);
        assert.equal(row.email, String(record.Email).toLowerCase());
        assert.equal(
          (row.modified_at as Date).getTime(),
          Date.parse(String(record.SystemModstamp).replace("+0000", "Z")),
        );
      }
      assert.deepEqual(sf.logins, ["soap"]);
    });

    it("moves only the three contacts changed since on the next run", async () => {
      const records = [...sf.objects.get("Contact")!.records.values()];
      const changed = [records[10], records[150], records[299]];
      const later = Date.now();
      changed.forEach((r, i) => {
        r.LastName = `Renamed${i}`;
        r.Email = `Renamed${i}@Example.ORG`;
        r.SystemModstamp = sfNow(later + i);
      });
      const run = await trigger("sf_inject", "sf_src");
      assert.equal(run.status, "succeeded", run.error);
      assert.equal(run.counts.read, 3);
      assert.equal(run.counts.update, 3);
      assert.equal(run.counts.insert, 0);
      for (const [i, r] of changed.entries()) {
        const row = await pg("e2e_sf_contacts").where({ id: r.Id }).first();
        assert.equal(row.last_name, `Renamed${i}`);
        assert.equal(row.email, `renamed${i}@example.org`);
        assert.equal(new Date(row.modified_at).getTime(), later + i);
      }
      assert.equal(count(await pg("e2e_sf_contacts").count({ n: "*" })), SF_CONTACTS);
      assert.equal(
        count(await pg("e2e_sf_contacts").where("last_name", "like", "Renamed%").count({ n: "*" })),
        3,
      );
    });
  });

  describe("PostgreSQL → HubSpot contacts, upserted by email", () => {
    before(async () => {
      // Five people HubSpot already has, under a differently cased email: updated, not doubled.
      hs.seed(
        "contacts",
        Array.from({ length: 5 }, (_, i) => ({
          email: `person${i + 1}@example.com`,
          firstname: "Old",
          lastname: "Name",
        })),
      );
      await pg.raw(
        `insert into e2e_out_people
         select g, 'Person' || g || '@Example.com', 'Db' || g, 'Person' || (g % 7),
                timestamptz '2026-05-01 00:00:00+00' + g * interval '1 ms'
         from generate_series(1, ${PEOPLE}) g`,
      );
    });

    it("creates the new contacts and updates the existing ones, 100 a call", async () => {
      const run = await trigger("out_inject", "out_src");
      assert.equal(run.status, "succeeded", run.error);
      assert.equal(run.counts.read, PEOPLE);
      assert.equal(run.counts.insert, PEOPLE - 5);
      assert.equal(run.counts.update, 5);
      assert.equal(run.counts.failed, 0);
      assert.equal(hs.objects.contacts.size, PEOPLE);
      const rows = await pg("e2e_out_people").select("email", "firstname", "lastname");
      for (const row of rows) {
        const contact = hs.findBy("contacts", "email", row.email);
        assert.ok(contact, `no contact for ${row.email}`);
        assert.equal(contact.properties.email, String(row.email).toLowerCase());
        assert.equal(contact.properties.firstname, row.firstname);
        assert.equal(contact.properties.lastname, row.lastname);
      }
      const calls = hs.requests("POST", "/crm/v3/objects/contacts/batch/upsert");
      assert.ok(calls.length >= 3, `${calls.length} calls`);
      for (const call of calls) {
        const inputs = (call.body as { inputs: Array<{ idProperty: string }> }).inputs;
        assert.ok(inputs.length <= 100);
        assert.ok(inputs.every((input) => input.idProperty === "email"));
      }
    });

    it("sends only the changed rows on the next run", async () => {
      await pg.raw(
        `update e2e_out_people set firstname = 'Changed' || id, updated_at = now() where id in (3, 77, 200)`,
      );
      const calls = hs.requests("POST", "/crm/v3/objects/contacts/batch/upsert").length;
      const run = await trigger("out_inject", "out_src");
      assert.equal(run.status, "succeeded", run.error);
      assert.equal(run.counts.read, 3);
      assert.equal(run.counts.update, 3);
      assert.equal(hs.requests("POST", "/crm/v3/objects/contacts/batch/upsert").length, calls + 1);
      assert.equal(hs.objects.contacts.size, PEOPLE);
      for (const id of [3, 77, 200])
        assert.equal(
          hs.findBy("contacts", "email", `person${id}@example.com`)?.properties.firstname,
          `Changed${id}`,
        );
    });
  });

  describe("HubSpot (OAuth2) → PostgreSQL: a token expiring mid-run and a 429 storm", () => {
    before(() => {
      hso.seed(
        "contacts",
        Array.from({ length: HS_CONTACTS }, (_, i) => ({
          email: `oauth${i}@example.com`,
          firstname: `OAuth${i}`,
          lastname: `Person${i % 13}`,
        })),
        // Ties of 50 contacts on one timestamp.
        (i) => new Date(Date.UTC(2026, 1, 1) + Math.floor(i / 50) * 1000).toISOString(),
      );
    });

    it("refreshes the token once, waits out every 429, and copies every contact exactly once", async () => {
      let searches = 0;
      const record = hso.onRequest!;
      hso.onRequest = (req) => {
        record(req);
        if (!req.path.endsWith("/search")) return;
        searches += 1;
        if (searches === 4) hso.expireAccessTokens(); // the token dies mid-run
        // The storm: every third search after the tenth is refused once, Retry-After 1 s.
        if (searches > 10 && searches % 3 === 0 && searches < 30)
          hso.rateLimit(1, 1, (r) => r.path.endsWith("/search"));
      };
      const started = Date.now();
      const run = await trigger("hso_inject", "hso_src");
      const elapsed = Date.now() - started;
      hso.onRequest = record;
      assert.equal(run.status, "succeeded", run.error);
      assert.equal(run.counts.read, HS_CONTACTS);
      assert.equal(run.counts.insert, HS_CONTACTS);
      assert.ok(searches >= 30, `only ${searches} searches: the storm did not happen`);
      const rateLimited = hso.log.filter((r) => r.status === 429).length;
      assert.ok(rateLimited >= 5, `only ${rateLimited} 429s`);
      assert.ok(elapsed >= rateLimited * 900, `Retry-After was not waited for (${elapsed} ms)`);
      assert.equal(hso.log.filter((r) => r.path === "/oauth/v1/token").length, 1);
      assert.equal(hso.log.filter((r) => r.status === 401).length, 1);

      // Count and an order-independent checksum: PostgreSQL's own against the fake's.
      const line = (r: { id: string; email: string; firstname: string; modified: string }) =>
        `${r.id}|${r.email}|${r.firstname}|${r.modified}`;
      const expected = [...hso.objects.contacts.values()]
        .map((c) =>
          line({
            id: String(c.id),
            email: c.properties.email!,
            firstname: c.properties.firstname!,
            modified: c.properties.lastmodifieddate!,
          }),
        )
        .sort();
      const result = await pg.raw(
        `select count(*)::int as n, md5(string_agg(line, E'\\n' order by line collate "C")) as md5
         from (select id || '|' || email || '|' || firstname || '|' ||
                 to_char(lastmodifieddate at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as line
               from e2e_hs_contacts) t`,
      );
      const actual = result.rows[0] as { n: number; md5: string };
      assert.equal(actual.n, HS_CONTACTS);
      assert.equal(actual.md5, md5(expected.join("\n")));

      // The refreshed tokens were stored at once, sealed: neither is readable in the row.
      const store = await StateStore.open({ file: path.join(userDir, "tributary-state.sqlite") });
      try {
        const row = await store.getToken("crm_hso");
        assert.ok(row);
        const fresh = [...hsoBearers].filter((t) => t !== HS_ACCESS);
        assert.equal(fresh.length, 1, "one refreshed access token was used");
        assert.equal(hso.currentRefreshToken, "hs-refresh-1");
        for (const secret of [...fresh, "hs-refresh-1", HS_ACCESS, HS_REFRESH])
          assert.ok(!row.sealed.includes(secret), "a token is readable in the sealed row");
        const opened = await vaultFor(CREDENTIAL_SECRET, store)
          .forConnection("crm_hso", "hubspot")
          .load();
        assert.equal(opened?.accessToken, fresh[0]);
        assert.equal(opened?.refreshToken, "hs-refresh-1");
      } finally {
        await store.close();
      }
    });
  });

  // Runs last: mocha runs a describe's own tests before its nested describes.
  describe("secrets", () => {
    it("never writes a token or password to the runtime's output or the flow files", () => {
      const secrets = [
        ADMIN_PASSWORD,
        adminToken,
        CREDENTIAL_SECRET,
        sf.password,
        sf.securityToken,
        sf.password + sf.securityToken,
        ...sf.sessions.keys(),
        HS_PRIVATE_TOKEN,
        HS_CLIENT_SECRET,
        HS_ACCESS,
        HS_REFRESH,
        "hs-refresh-1",
        ...hsoBearers,
      ].filter(Boolean);
      assert.ok(sf.sessions.size >= 1 && hsoBearers.size >= 2);
      const output = server!.output();
      const flows = fs.readFileSync(path.join(userDir, "flows.json"), "utf8");
      const creds = fs.readFileSync(path.join(userDir, "flows_cred.json"), "utf8");
      for (const secret of secrets) {
        assert.ok(!output.includes(secret), `the runtime's output shows ${secret.slice(0, 6)}…`);
        assert.ok(!flows.includes(secret), `flows.json shows ${secret.slice(0, 6)}…`);
        assert.ok(!creds.includes(secret), `flows_cred.json shows ${secret.slice(0, 6)}…`);
      }
    });
  });
});
