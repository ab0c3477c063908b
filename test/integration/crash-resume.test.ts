/**
 * A runtime killed in the middle of a run (SIGKILL, not a polite stop) resumes from
 * the last settled batch on the next run: nothing is lost (count + checksum), and
 * the rows before the watermark are not read again.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
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

const ROWS = 50_000;
const root = path.resolve(__dirname, "..", "..", "..");
const cli = path.join(root, "bin", "tributary.js");

function flowFile(dir: string): string {
  const pg = configFromUrl(PG_URL);
  const my = configFromUrl(MYSQL_URL);
  const flow = [
    { id: "crash_tab", type: "tab", label: "crash" },
    {
      id: "crash_pg",
      type: "tributary-db-connection",
      z: "crash_tab",
      client: "pg",
      host: pg.host,
      port: pg.port,
      database: pg.database,
      credentials: { user: pg.user, password: pg.password },
    },
    {
      id: "crash_my",
      type: "tributary-db-connection",
      z: "crash_tab",
      client: "mysql",
      host: my.host,
      port: my.port,
      database: my.database,
      credentials: { user: my.user, password: my.password },
    },
    {
      id: "crash_src",
      type: "tributary-db-source",
      z: "crash_tab",
      name: "customers",
      connection: "crash_pg",
      table: "crash_customers",
      keyColumns: ["id"],
      cursorColumn: "updated_at",
      mode: "incremental",
      batchSize: 250,
      maxInFlight: 1,
      wires: [["crash_up"], []],
    },
    {
      id: "crash_up",
      type: "tributary-upsert",
      z: "crash_tab",
      connection: "crash_my",
      table: "crash_customers",
      keyColumns: ["id"],
      mode: "upsert",
      wires: [[], []],
    },
  ];
  const file = path.join(dir, "flow.json");
  fs.writeFileSync(file, JSON.stringify(flow, null, 2));
  return file;
}

function runCli(
  file: string,
  userDir: string,
): { child: ChildProcess; done: Promise<{ code: number | null; out: string }> } {
  const child = spawn(process.execPath, [cli, "run", file], {
    env: {
      ...process.env,
      TRIBUTARY_USER_DIR: userDir,
      TRIBUTARY_CREDENTIAL_SECRET: "crash-test-secret",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ code: number | null; out: string }>((resolve) =>
    child.on("exit", (code) => resolve({ code, out })),
  );
  return { child, done };
}

async function count(my: Knex): Promise<number> {
  const rows = await my("crash_customers").count({ n: "*" });
  return Number((rows[0] as { n: unknown }).n);
}

describe("crash in the middle of a run", function () {
  this.timeout(180_000);
  let pg: Knex;
  let my: Knex;

  before(async function () {
    pg = pgKnex();
    my = mysqlKnex();
    await requireServer(this, "PostgreSQL", pg);
    await requireServer(this, "MySQL/MariaDB", my);
    await createPgCustomers(pg, "crash_customers", ROWS);
    await createMysqlCustomers(my, "crash_customers");
  });

  after(async () => {
    await pg?.destroy();
    await my?.destroy();
  });

  it("resumes from the last settled batch after SIGKILL, losing and re-reading nothing", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-crash-"));
    const file = flowFile(dir);
    const userDir = path.join(dir, "user");
    const first = runCli(file, userDir);
    const deadline = Date.now() + 60_000;
    let before = 0;
    while (Date.now() < deadline) {
      before = await count(my);
      if (before >= 5_000) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    first.child.kill("SIGKILL");
    const killed = await first.done;
    assert.ok(
      before >= 5_000 && before < ROWS,
      `killed too late or too early (${before} rows): ${killed.out}`,
    );
    const atKill = await count(my);
    assert.ok(atKill < ROWS, "the first run finished before the kill");

    const second = runCli(file, userDir);
    const result = await second.done;
    assert.equal(result.code, 0, result.out);
    const read = Number(/read=(\d+)/.exec(result.out)?.[1]);
    // Resumed: it read what was not settled before the kill (at most one batch was
    // written but not yet recorded), not the whole table.
    assert.ok(
      read <= ROWS - atKill + 250 && read > 0,
      `second run read ${read} rows, ${atKill} were written before the kill`,
    );
    assert.deepEqual(
      await mysqlChecksum("crash_customers"),
      await pgChecksum(pg, "crash_customers"),
    );
  });
});
