/**
 * tributary-db-connection in a loaded flow: a wrong client, port or filename is
 * logged by the connection naming the field, and the nodes that use it show red;
 * `${ENV_VAR}` in host, database, filename and credentials is resolved, and a
 * variable that is not set is named.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import type { Knex } from "knex";
import { allNodes, helper, useTempUserDir, type HelperNode } from "../support/red";
import { PG_URL, configFromUrl, pgKnex, requireServer } from "../support/databases";
import { closeStateStores } from "../../nodes/lib/state-store";
import type { RunSummary, SyncRecord } from "../../nodes/lib/types";

// ---- helpers for node-red-node-test-helper's spies (shared by every node of a flow) ----

interface Status {
  fill?: string;
  shape?: string;
  text?: string;
}
interface SpyCall {
  thisValue: unknown;
  args: unknown[];
}
type Msg = Record<string, unknown>;

function callsOf(node: HelperNode, method: "status" | "error" | "warn"): unknown[][] {
  const spy = node[method] as unknown as { getCalls(): SpyCall[] };
  return spy
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => c.args);
}

function statuses(node: HelperNode): Status[] {
  return callsOf(node, "status").map((args) => (args[0] ?? {}) as Status);
}

function lastStatus(node: HelperNode): Status {
  return statuses(node).at(-1) ?? {};
}

function logged(node: HelperNode, method: "error" | "warn"): string[] {
  return callsOf(node, method).map(([m]) => (m instanceof Error ? m.message : String(m)));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, predicate: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function collect(node: HelperNode): Msg[] {
  const list: Msg[] = [];
  node.on("input", (msg: Msg) => list.push(msg));
  return list;
}

async function trigger(source: HelperNode, summaries: Msg[], msg: Msg = {}): Promise<RunSummary> {
  const before = summaries.length;
  source.receive(msg);
  await waitFor(`a run summary from ${source.id}`, () => summaries.length > before);
  return summaries[before].payload as RunSummary;
}

// ---- fixtures ----

const TABLE = "connnode_people";

function createSqliteTable(file: string, rows: SyncRecord[]): void {
  const db = new Database(file);
  try {
    db.exec(`drop table if exists ${TABLE}`);
    db.exec(`create table ${TABLE} (id integer primary key, name text, updated_at text)`);
    const insert = db.prepare(
      `insert into ${TABLE} (id, name, updated_at) values (@id, @name, @updated_at)`,
    );
    for (const row of rows) insert.run(row);
  } finally {
    db.close();
  }
}

function sqliteRows(file: string): SyncRecord[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`select * from ${TABLE} order by id`).all() as SyncRecord[];
  } finally {
    db.close();
  }
}

function person(id: number): SyncRecord {
  return { id, name: `Person ${id}`, updated_at: `2026-05-01T12:00:0${id}.123456Z` };
}

/** A source reading through `connection` into `sinkId`, with a helper on its output 2. */
function sourceOf(connection: string, sinkId: string): unknown[] {
  return [
    {
      id: `${connection}-source`,
      type: "tributary-db-source",
      connection,
      table: TABLE,
      keyColumns: ["id"],
      cursorColumn: "updated_at",
      mode: "incremental",
      wires: [[sinkId], [`${connection}-summary`]],
    },
    { id: `${connection}-summary`, type: "helper" },
  ];
}

/** An upsert writing through `connection`, id `<connection>-upsert`. */
function upsertOf(connection: string): unknown {
  return {
    id: `${connection}-upsert`,
    type: "tributary-upsert",
    connection,
    table: TABLE,
    keyColumns: ["id"],
    wires: [[], []],
  };
}

describe("tributary-db-connection node", function () {
  this.timeout(30_000);
  let dir: string;
  const envSet: string[] = [];

  function setEnv(name: string, value: string): void {
    process.env[name] = value;
    envSet.push(name);
  }

  before(() => {
    useTempUserDir();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-connnode-"));
  });

  afterEach(async () => {
    await helper.unload();
    for (const name of envSet.splice(0)) delete process.env[name];
  });

  after(async () => {
    await closeStateStores();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe("a wrong setting is named, and the nodes using the connection show red", () => {
    const cases: Array<{
      id: string;
      what: string;
      props: Record<string, unknown>;
      pattern: RegExp;
      short: RegExp;
    }> = [
      {
        id: "connnode-c-client",
        what: "an unsupported client",
        props: { client: "postgresql", host: "127.0.0.1", database: "test" },
        pattern: /client "postgresql" is not supported: choose pg, mysql, mssql, oracle or sqlite/,
        short: /client "postgresql"/,
      },
      {
        id: "connnode-c-port",
        what: "a port out of range",
        props: { client: "pg", host: "127.0.0.1", port: "70000", database: "test" },
        pattern: /port "70000" is not a port number/,
        short: /port "70000"/,
      },
      {
        id: "connnode-c-porttext",
        what: "a port that is not a number",
        props: { client: "mysql", host: "127.0.0.1", port: "mysql", database: "test" },
        pattern: /port "mysql" is not a port number/,
        short: /port "mysql"/,
      },
      {
        id: "connnode-c-file",
        what: "SQLite without a filename",
        props: { client: "sqlite", filename: "" },
        pattern: /filename is empty/,
        short: /filename is empty/,
      },
      {
        id: "connnode-c-env",
        what: "a variable inside a filename that is not set",
        props: { client: "sqlite", filename: "${TRIB_CONNNODE_UNSET_DIR}/people.sqlite" },
        pattern: /environment variable TRIB_CONNNODE_UNSET_DIR is not set/,
        short: /TRIB_CONNNODE_UNSET_DIR/,
      },
      {
        id: "connnode-c-envwhole",
        what: "a whole-value variable in host that is not set",
        props: { client: "pg", host: "${TRIB_CONNNODE_UNSET_HOST}", database: "test" },
        pattern: /environment variable TRIB_CONNNODE_UNSET_HOST is not set/,
        short: /TRIB_CONNNODE_UNSET_HOST/,
      },
    ];
    let targetFile: string;

    beforeEach(async () => {
      targetFile = path.join(dir, "target-bad.sqlite");
      createSqliteTable(targetFile, []);
      const flow: unknown[] = [
        {
          id: "connnode-c-ok",
          type: "tributary-db-connection",
          client: "sqlite",
          filename: targetFile,
        },
        upsertOf("connnode-c-ok"),
      ];
      for (const c of cases) {
        flow.push(
          { id: c.id, type: "tributary-db-connection", ...c.props },
          ...sourceOf(c.id, "connnode-c-ok-upsert"),
          upsertOf(c.id),
        );
      }
      await helper.load(allNodes, flow);
    });

    for (const c of cases) {
      it(`${c.what}: logged by the connection and shown red on the upsert`, () => {
        const conn = helper.getNode(c.id);
        assert.ok(
          logged(conn, "error").some((m) => c.pattern.test(m)),
          `connection log: ${JSON.stringify(logged(conn, "error"))}`,
        );
        const upsert = helper.getNode(`${c.id}-upsert`);
        const status = lastStatus(upsert);
        assert.equal(status.fill, "red", `upsert status ${JSON.stringify(status)}`);
        assert.match(status.text ?? "", c.short);
      });

      it(`${c.what}: a trigger of the source fails with a summary and a red status naming it`, async () => {
        const source = helper.getNode(`${c.id}-source`);
        const summaries = collect(helper.getNode(`${c.id}-summary`));
        const summary = await trigger(source, summaries);
        assert.equal(summary.status, "failed");
        assert.match(summary.error ?? "", c.pattern);
        assert.equal(lastStatus(source).fill, "red");
        assert.ok(logged(source, "error").some((m) => c.pattern.test(m)));
      });
    }

    it("the source using a broken connection shows red at deploy, before any trigger", () => {
      const broken: string[] = [];
      for (const c of cases) {
        const source = helper.getNode(`${c.id}-source`);
        if (lastStatus(source).fill !== "red")
          broken.push(`${c.id}-source: ${JSON.stringify(statuses(source))}`);
      }
      assert.deepEqual(
        broken,
        [],
        "sources with a broken connection showed no error until triggered",
      );
    });

    it("a healthy connection in the same flow has no error", () => {
      assert.deepEqual(logged(helper.getNode("connnode-c-ok"), "error"), []);
      assert.notEqual(lastStatus(helper.getNode("connnode-c-ok-upsert")).fill, "red");
    });
  });

  describe("${ENV_VAR} in connection settings", () => {
    it("resolves a SQLite filename from a variable (whole value and inside a path)", async () => {
      const srcFile = path.join(dir, "env-source.sqlite");
      const envDir = path.join(dir, "env-target");
      fs.mkdirSync(envDir, { recursive: true });
      createSqliteTable(srcFile, [person(1), person(2), person(3)]);
      createSqliteTable(path.join(envDir, "people.sqlite"), []);
      setEnv("TRIB_CONNNODE_SRC_FILE", srcFile);
      setEnv("TRIB_CONNNODE_DIR", envDir);

      await helper.load(allNodes, [
        {
          id: "connnode-env-src",
          type: "tributary-db-connection",
          client: "sqlite",
          filename: "${TRIB_CONNNODE_SRC_FILE}",
        },
        {
          id: "connnode-env-dst",
          type: "tributary-db-connection",
          client: "sqlite",
          filename: "${TRIB_CONNNODE_DIR}/people.sqlite",
        },
        ...sourceOf("connnode-env-src", "connnode-env-dst-upsert"),
        upsertOf("connnode-env-dst"),
      ]);
      assert.deepEqual(logged(helper.getNode("connnode-env-src"), "error"), []);
      assert.deepEqual(logged(helper.getNode("connnode-env-dst"), "error"), []);

      const summaries = collect(helper.getNode("connnode-env-src-summary"));
      const summary = await trigger(helper.getNode("connnode-env-src-source"), summaries);
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.insert, 3);
      assert.deepEqual(sqliteRows(path.join(envDir, "people.sqlite")), sqliteRows(srcFile));
      assert.ok(
        !fs.existsSync(path.join(dir, "${TRIB_CONNNODE_DIR}")),
        "a file was made under a literal ${...} path",
      );
    });

    describe("PostgreSQL host, database and user from variables", () => {
      let pg: Knex;

      before(async function () {
        pg = pgKnex();
        await requireServer(this, "PostgreSQL", pg);
        await pg.raw(`drop table if exists ${TABLE}`);
        await pg.raw(
          `create table ${TABLE} (id bigint primary key, name text, updated_at timestamptz)`,
        );
        await pg.raw(
          `insert into ${TABLE} select g, 'Person ' || g,
             timestamptz '2026-05-01 12:00:00+00' + g * interval '1 second' + interval '123456 microseconds'
           from generate_series(1, 4) g`,
        );
      });

      after(async () => {
        await pg?.raw(`drop table if exists ${TABLE}`);
        await pg?.destroy();
      });

      it("reads from the server the variables name", async () => {
        const c = configFromUrl(PG_URL);
        setEnv("TRIB_CONNNODE_PG_HOST", c.host);
        setEnv("TRIB_CONNNODE_PG_DB", c.database);
        setEnv("TRIB_CONNNODE_PG_USER", c.user);
        setEnv("TRIB_CONNNODE_PG_PASSWORD", c.password);
        const target = path.join(dir, "from-pg.sqlite");
        createSqliteTable(target, []);
        await helper.load(
          allNodes,
          [
            {
              id: "connnode-envpg",
              type: "tributary-db-connection",
              client: "pg",
              host: "${TRIB_CONNNODE_PG_HOST}",
              port: c.port,
              database: "${TRIB_CONNNODE_PG_DB}",
            },
            {
              id: "connnode-envpg-dst",
              type: "tributary-db-connection",
              client: "sqlite",
              filename: target,
            },
            ...sourceOf("connnode-envpg", "connnode-envpg-dst-upsert"),
            upsertOf("connnode-envpg-dst"),
          ],
          {
            "connnode-envpg": {
              user: "${TRIB_CONNNODE_PG_USER}",
              password: "${TRIB_CONNNODE_PG_PASSWORD}",
            },
          },
        );
        assert.deepEqual(logged(helper.getNode("connnode-envpg"), "error"), []);
        const summaries = collect(helper.getNode("connnode-envpg-summary"));
        const summary = await trigger(helper.getNode("connnode-envpg-source"), summaries);
        assert.equal(summary.status, "succeeded", summary.error);
        assert.equal(summary.counts.insert, 4);
        const rows = sqliteRows(target);
        assert.deepEqual(
          rows.map((r) => r.name),
          ["Person 1", "Person 2", "Person 3", "Person 4"],
        );
        assert.equal(rows[0].updated_at, "2026-05-01T12:00:01.123456Z");
      });

      it("names an unset variable in the credentials", async () => {
        const c = configFromUrl(PG_URL);
        await helper.load(
          allNodes,
          [
            {
              id: "connnode-envpw",
              type: "tributary-db-connection",
              client: "pg",
              host: c.host,
              database: c.database,
            },
            {
              id: "connnode-envpw-dst",
              type: "tributary-db-connection",
              client: "sqlite",
              filename: ":memory:",
            },
            ...sourceOf("connnode-envpw", "connnode-envpw-dst-upsert"),
            upsertOf("connnode-envpw-dst"),
          ],
          { "connnode-envpw": { user: "postgres", password: "${TRIB_CONNNODE_UNSET_PASSWORD}" } },
        );
        const conn = helper.getNode("connnode-envpw");
        assert.ok(
          logged(conn, "error").some((m) => /TRIB_CONNNODE_UNSET_PASSWORD is not set/.test(m)),
          JSON.stringify(logged(conn, "error")),
        );
      });
    });
  });
});
