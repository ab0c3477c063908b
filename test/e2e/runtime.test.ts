/**
 * The hosted runtime as a user runs it: `tributary start` in a child process, the
 * editor's login, a flow deployed through the admin API, an inject clicked, rows
 * arriving in MariaDB; health, secrets at rest, graceful stop.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import type { Knex } from "knex";
import {
  MYSQL_URL,
  PG_URL,
  configFromUrl,
  mysqlKnex,
  pgKnex,
  requireServer,
} from "../support/databases";
import {
  createMysqlCustomers,
  createPgCustomers,
  mysqlChecksum,
  pgChecksum,
} from "../support/customers";
import { cli, json, kill, spawnUntil, tempDir, waitFor, type Started } from "./support";

const PASSWORD = "e2e-admin-pass";
const PG_SECRET = "s3cret-e2e";

describe("hosted runtime (tributary start)", function () {
  this.timeout(180_000);
  let pg: Knex;
  let my: Knex;
  let server: Started | undefined;
  let userDir: string;
  let token: string;

  before(async function () {
    pg = pgKnex();
    my = mysqlKnex();
    await requireServer(this, "PostgreSQL", pg);
    await requireServer(this, "MySQL/MariaDB", my);
    await createPgCustomers(pg, "e2e_customers", 2_000);
    await createMysqlCustomers(my, "e2e_customers");
    userDir = path.join(tempDir("tributary-e2e-"), "user");
    server = await spawnUntil(
      [cli, "start"],
      {
        PORT: "0",
        TRIBUTARY_USER_DIR: userDir,
        TRIBUTARY_ADMIN_PASSWORD: PASSWORD,
        TRIBUTARY_VIEWER_PASSWORD: "viewer-pass",
        NODE_ENV: "",
      },
      /Tributary is running: (http:\/\/[^/\s]+)\//,
    );
  });

  after(async () => {
    kill(server?.child);
    await pg?.destroy();
    await my?.destroy();
  });

  it("is healthy: Node-RED started and the state store answers", async () => {
    const health = await json(`${server!.url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { status: "ok", nodeRed: true, stateStore: true });
  });

  it("serves the editor at / and asks for a login", async () => {
    const page = await fetch(`${server!.url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Node-RED/);
    assert.equal((await fetch(`${server!.url}/flows`)).status, 401);
    const wrong = await json(`${server!.url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        client_id: "node-red-admin",
        grant_type: "password",
        scope: "*",
        username: "admin",
        password: "nope",
      }),
    });
    assert.equal(wrong.status, 403);
    const login = await json(`${server!.url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        client_id: "node-red-admin",
        grant_type: "password",
        scope: "*",
        username: "admin",
        password: PASSWORD,
      }),
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    token = (login.body as { access_token: string }).access_token;
    assert.ok(token);
  });

  it("deployed the demo on first start, and it has already synced 500 customers", async () => {
    const flows = await json(`${server!.url}/flows`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(flows.status, 200);
    const types = (flows.body as Array<{ type: string }>).map((n) => n.type);
    for (const type of ["tributary-db-connection", "tributary-db-source", "tributary-upsert"])
      assert.ok(types.includes(type), type);
    const count = await waitFor("the demo target to fill", async () => {
      const db = new Database(path.join(userDir, "demo", "target.sqlite"), { readonly: true });
      try {
        const n = (db.prepare("select count(*) as n from customers").get() as { n: number }).n;
        return n === 500 ? n : undefined;
      } finally {
        db.close();
      }
    });
    assert.equal(count, 500);
  });

  it("lists the pack's nodes in the palette, from module node-red-contrib-tributary", async () => {
    const nodes = await json(`${server!.url}/nodes`, {
      headers: { authorization: `Bearer ${token}`, accept: "application/json" },
    });
    const sets = nodes.body as Array<{
      module: string;
      types: string[];
      enabled: boolean;
      err?: string;
    }>;
    const ours = sets.filter((s) => s.module === "node-red-contrib-tributary");
    const types = ours.flatMap((s) => s.types);
    for (const type of ["tributary-db-connection", "tributary-db-source", "tributary-upsert"])
      assert.ok(types.includes(type), type);
    for (const set of ours) assert.equal(set.err, undefined, set.err);
  });

  it("loads the sync sidebar plugin into the editor", async () => {
    const list = await json(`${server!.url}/plugins`, {
      headers: { authorization: `Bearer ${token}`, accept: "application/json" },
    });
    const ids = (list.body as Array<{ id: string; plugins: Array<{ id: string }> }>).flatMap((s) =>
      s.plugins.map((p) => p.id),
    );
    assert.ok(ids.includes("tributary-sidebar"), JSON.stringify(list.body));
    const html = await (
      await fetch(`${server!.url}/plugins`, {
        headers: { authorization: `Bearer ${token}`, accept: "text/html" },
      })
    ).text();
    assert.match(html, /RED\.sidebar\.addTab/);
  });

  it("syncs PostgreSQL → MySQL from a deployed flow when the inject is clicked, then only the changes", async () => {
    const p = configFromUrl(PG_URL);
    const m = configFromUrl(MYSQL_URL);
    const flow = [
      { id: "e2e_tab", type: "tab", label: "e2e" },
      {
        id: "e2e_pg",
        type: "tributary-db-connection",
        z: "e2e_tab",
        client: "pg",
        host: p.host,
        port: p.port,
        database: p.database,
        credentials: { user: p.user, password: PG_SECRET },
      },
      {
        id: "e2e_my",
        type: "tributary-db-connection",
        z: "e2e_tab",
        client: "mysql",
        host: m.host,
        port: m.port,
        database: m.database,
        credentials: { user: m.user, password: m.password },
      },
      {
        id: "e2e_inject",
        type: "inject",
        z: "e2e_tab",
        props: [],
        repeat: "",
        once: false,
        wires: [["e2e_src"]],
      },
      {
        id: "e2e_src",
        type: "tributary-db-source",
        z: "e2e_tab",
        connection: "e2e_pg",
        table: "e2e_customers",
        keyColumns: ["id"],
        cursorColumn: "updated_at",
        mode: "incremental",
        batchSize: 500,
        wires: [["e2e_up"], []],
      },
      {
        id: "e2e_up",
        type: "tributary-upsert",
        z: "e2e_tab",
        connection: "e2e_my",
        table: "e2e_customers",
        keyColumns: ["id"],
        mode: "upsert",
        wires: [[], []],
      },
    ];
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const deploy = await json(`${server!.url}/flows`, {
      method: "POST",
      headers: { ...auth, "Node-RED-Deployment-Type": "full" },
      body: JSON.stringify(flow),
    });
    assert.ok([200, 204].includes(deploy.status), JSON.stringify(deploy.body));
    // Deploying returns before the new flows have started.
    await waitFor(
      "the inject node to start",
      async () =>
        (await json(`${server!.url}/inject/e2e_inject`, { method: "POST", headers: auth }))
          .status === 200,
    );
    await waitFor(
      "2,000 rows in MySQL",
      async () => (await mysqlChecksum("e2e_customers")).count === 2_000,
    );
    await waitFor("the checksums to match", async () => {
      const [a, b] = [await mysqlChecksum("e2e_customers"), await pgChecksum(pg, "e2e_customers")];
      return a.md5 === b.md5;
    });

    await pg.raw(
      "update e2e_customers set first_name = 'changed', updated_at = clock_timestamp() where id <= 100",
    );
    await json(`${server!.url}/inject/e2e_inject`, { method: "POST", headers: auth });
    await waitFor("the 100 changes in MySQL", async () => {
      const rows = await my("e2e_customers").where({ first_name: "changed" }).count({ n: "*" });
      return Number((rows[0] as { n: unknown }).n) === 100;
    });
    assert.deepEqual(await mysqlChecksum("e2e_customers"), await pgChecksum(pg, "e2e_customers"));
  });

  it("exposes the runs on /metrics with the right values", async () => {
    const text = await (await fetch(`${server!.url}/metrics`)).text();
    assert.match(text, /^tributary_rows_total\{node="e2e_up",outcome="insert"\} 2000$/m);
    // MySQL cannot tell updated rows from unchanged ones: the 100 changes count as updates.
    assert.match(text, /^tributary_rows_total\{node="e2e_up",outcome="update"\} 100$/m);
    assert.match(text, /^tributary_runs_total\{source="e2e_src",status="succeeded"\} 2$/m);
    assert.match(
      text,
      /^tributary_run_duration_seconds_count\{source="e2e_src",status="succeeded"\} 2$/m,
    );
    assert.match(text, /^tributary_source_lag_seconds\{source="e2e_src"\} \d/m);
    assert.match(
      text,
      /^tributary_pool_connections\{connection="MySQL \/ MariaDB [^"]+",state="max"\} 4$/m,
    );
    assert.match(text, /^process_cpu_user_seconds_total /m);
  });

  it("management API: 401 without a token, 403 for a read-only user's action", async () => {
    assert.equal((await fetch(`${server!.url}/tributary/runs`)).status, 401);
    const login = await json(`${server!.url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        client_id: "node-red-admin",
        grant_type: "password",
        scope: "read",
        username: "viewer",
        password: "viewer-pass",
      }),
    });
    const viewer = (login.body as { access_token: string }).access_token;
    const read = await json(`${server!.url}/tributary/runs`, {
      headers: { authorization: `Bearer ${viewer}` },
    });
    assert.equal(read.status, 200);
    const act = await json(`${server!.url}/tributary/sources/e2e_src/run`, {
      method: "POST",
      headers: { authorization: `Bearer ${viewer}`, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(act.status, 403);
  });

  it("management API: runs with filters and cursor pages, detail, manual and dry runs, watermarks", async () => {
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const page1 = await json(`${server!.url}/tributary/runs?source=e2e_src&limit=1`, {
      headers: auth,
    });
    const body1 = page1.body as {
      runs: Array<{ runId: string; status: string }>;
      nextCursor: string;
    };
    assert.equal(body1.runs.length, 1);
    assert.ok(body1.nextCursor);
    const page2 = await json(
      `${server!.url}/tributary/runs?source=e2e_src&limit=1&cursor=${body1.nextCursor}`,
      { headers: auth },
    );
    const body2 = page2.body as { runs: Array<{ runId: string }>; nextCursor: string | null };
    assert.equal(body2.runs.length, 1);
    assert.notEqual(body2.runs[0].runId, body1.runs[0].runId);
    for (const [query, word] of [
      ["status=done", "status"],
      ["since=yesterday", "since"],
      ["limit=0", "limit"],
      ["cursor=zzz", "cursor"],
    ]) {
      const bad = await json(`${server!.url}/tributary/runs?${query}`, { headers: auth });
      assert.equal(bad.status, 400, query);
      assert.match((bad.body as { error: { message: string } }).error.message, new RegExp(word));
    }
    assert.equal(
      (await json(`${server!.url}/tributary/runs/no-such-run`, { headers: auth })).status,
      404,
    );
    const detail = await json(`${server!.url}/tributary/runs/${body1.runs[0].runId}`, {
      headers: auth,
    });
    assert.equal((detail.body as { run: { counts: { read: number } } }).run.counts.read, 100);

    // A dry run computes what would change and writes nothing.
    await pg.raw(
      "update e2e_customers set last_name = 'dry', updated_at = clock_timestamp() where id = 7",
    );
    const dry = await json(`${server!.url}/tributary/sources/e2e_src/run`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ dryRun: true }),
    });
    assert.equal(dry.status, 202, JSON.stringify(dry.body));
    const dryId = (dry.body as { runId: string }).runId;
    const dryRun = await waitFor("the dry run to finish", async () => {
      const r = await json(`${server!.url}/tributary/runs/${dryId}`, { headers: auth });
      const run = (r.body as { run?: { status: string; counts: { update: number } } }).run;
      return run && run.status !== "running" ? run : undefined;
    });
    assert.equal(dryRun.status, "succeeded");
    assert.equal(dryRun.counts.update, 1);
    assert.equal((await my("e2e_customers").where({ id: 7 }).first()).last_name, "Last7");

    const real = await json(`${server!.url}/tributary/sources/e2e_src/run`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ mode: "incremental" }),
    });
    assert.equal(real.status, 202);
    await waitFor(
      "the real run to write",
      async () => (await my("e2e_customers").where({ id: 7 }).first()).last_name === "dry",
    );
    assert.equal(
      (
        await json(`${server!.url}/tributary/sources/nope/run`, {
          method: "POST",
          headers: auth,
          body: "{}",
        })
      ).status,
      404,
    );
    assert.equal(
      (
        await json(`${server!.url}/tributary/sources/e2e_src/run`, {
          method: "POST",
          headers: auth,
          body: JSON.stringify({ mode: "sometimes" }),
        })
      ).status,
      400,
    );

    const marks = await json(`${server!.url}/tributary/watermarks`, { headers: auth });
    const mark = (
      marks.body as { watermarks: Array<{ sourceId: string; cursorField: string }> }
    ).watermarks.find((w) => w.sourceId === "e2e_src");
    assert.equal(mark?.cursorField, "updated_at");
    const reset = await json(`${server!.url}/tributary/watermarks/e2e_src`, {
      method: "DELETE",
      headers: auth,
    });
    assert.equal(reset.status, 204);
    const full = await json(`${server!.url}/tributary/sources/e2e_src/run`, {
      method: "POST",
      headers: auth,
      body: "{}",
    });
    const fullId = (full.body as { runId: string }).runId;
    const fullRun = await waitFor("the re-sync", async () => {
      const r = await json(`${server!.url}/tributary/runs/${fullId}`, { headers: auth });
      const run = (r.body as { run?: { status: string; counts: { read: number } } }).run;
      return run && run.status !== "running" ? run : undefined;
    });
    assert.equal(fullRun.counts.read, 2_000);
  });

  it("management API: the review queue lists and validates resolutions", async () => {
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const list = await json(`${server!.url}/tributary/review`, { headers: auth });
    assert.deepEqual(list.body, { items: [] });
    assert.equal(
      (await json(`${server!.url}/tributary/review?status=maybe`, { headers: auth })).status,
      400,
    );
    const bad = await json(`${server!.url}/tributary/review/1`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ resolution: "both" }),
    });
    assert.equal(bad.status, 400);
    const missing = await json(`${server!.url}/tributary/review/999`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ resolution: "source" }),
    });
    assert.equal(missing.status, 404);
  });

  it("management API: tests a connection form without deploying it, and never echoes the password", async () => {
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const m = configFromUrl(MYSQL_URL);
    const good = await json(`${server!.url}/tributary/connections/test`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        type: "tributary-db-connection",
        config: { client: "mysql", host: m.host, port: m.port, database: m.database },
        credentials: { user: m.user, password: m.password },
      }),
    });
    assert.equal((good.body as { ok: boolean }).ok, true, JSON.stringify(good.body));
    const probe = good.body as {
      version: string;
      database: string;
      user: string;
      timezone: string;
    };
    assert.match(probe.version, /\d+\.\d+/);
    assert.equal(probe.database, m.database);
    assert.match(probe.user, new RegExp(`^${m.user}@`));
    assert.ok(probe.timezone, "the reply names the session's time zone");
    const wrong = await json(`${server!.url}/tributary/connections/test`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        type: "tributary-db-connection",
        config: { client: "mysql", host: m.host, port: m.port, database: m.database },
        credentials: { user: "nobody_here", password: "Hunter2-not-echoed" },
      }),
    });
    assert.deepEqual((wrong.body as { error: { code: string } }).error.code, "auth-failed");
    assert.ok(!JSON.stringify(wrong.body).includes("Hunter2-not-echoed"));
    const deployed = await json(`${server!.url}/tributary/connections/e2e_pg/test`, {
      method: "POST",
      headers: auth,
      body: "{}",
    });
    assert.equal((deployed.body as { ok: boolean }).ok, true);
    assert.equal(
      (
        await json(`${server!.url}/tributary/connections/nope/test`, {
          method: "POST",
          headers: auth,
          body: "{}",
        })
      ).status,
      404,
    );
  });

  it("management API: discovers tables and keys of a deployed connection, for the pickers", async () => {
    const auth = { authorization: `Bearer ${token}` };
    const list = await json(`${server!.url}/tributary/connections/e2e_pg/schema`, {
      headers: auth,
    });
    const tables = (list.body as { tables: Array<{ name: string; approxRows: number | null }> })
      .tables;
    assert.ok(tables.some((t) => t.name === "e2e_customers"));
    const detail = await json(`${server!.url}/tributary/connections/e2e_pg/schema/e2e_customers`, {
      headers: auth,
    });
    assert.deepEqual((detail.body as { primaryKey: string[] }).primaryKey, ["id"]);
    assert.equal(
      (
        await json(`${server!.url}/tributary/connections/e2e_pg/schema/nope_table`, {
          headers: auth,
        })
      ).status,
      404,
    );
  });

  it("keeps the password out of flows.json, encrypted in flows_cred.json", () => {
    const flows = fs.readFileSync(path.join(userDir, "flows.json"), "utf8");
    assert.ok(!flows.includes(PG_SECRET));
    const creds = fs.readFileSync(path.join(userDir, "flows_cred.json"), "utf8");
    assert.ok(!creds.includes(PG_SECRET));
    assert.match(creds, /"\$"/);
    const secret = fs.statSync(path.join(userDir, ".credential-secret"));
    assert.equal(secret.mode & 0o777, 0o600);
  });

  it("stops on SIGTERM with exit code 0", async () => {
    server!.child.kill("SIGTERM");
    const code = await Promise.race([
      server!.exited,
      new Promise((r) => setTimeout(() => r("timeout"), 30_000)),
    ]);
    assert.equal(code, 0, server!.output());
  });
});

describe("hosted runtime refuses to start in production without a credential secret", function () {
  this.timeout(30_000);
  it("exits non-zero naming TRIBUTARY_CREDENTIAL_SECRET", async () => {
    const userDir = path.join(tempDir("tributary-prod-"), "user");
    await assert.rejects(
      spawnUntil(
        [cli, "start"],
        {
          PORT: "0",
          TRIBUTARY_USER_DIR: userDir,
          NODE_ENV: "production",
          TRIBUTARY_CREDENTIAL_SECRET: "",
        },
        /never/,
      ),
      /exited with 1 before ready:[\s\S]*TRIBUTARY_CREDENTIAL_SECRET is not set/,
    );
  });
});
