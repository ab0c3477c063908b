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
import { cli, kill, spawnUntil, tempDir, waitFor, type Started } from "./support";

const PASSWORD = "e2e-admin-pass";
const PG_SECRET = "s3cret-e2e";

async function json(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body };
}

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
      { PORT: "0", TRIBUTARY_USER_DIR: userDir, TRIBUTARY_ADMIN_PASSWORD: PASSWORD, NODE_ENV: "" },
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
