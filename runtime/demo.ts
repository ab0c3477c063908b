/**
 * The demo deployed on a first start with an empty user directory: 500 sample
 * customers in a SQLite file, synced to a second SQLite file by a flow that runs
 * once a second after deploy and then every minute.
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";

const CITIES = ["Berlin", "Paris", "Lisbon", "Austin", "Osaka"];
const COUNTRIES = ["DE", "FR", "PT", "US", "JP"];
const FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"];
const LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"];

const CUSTOMERS_DDL = `create table if not exists customers (
  id integer primary key, email text not null, first_name text, last_name text,
  city text, country text, balance text, updated_at text not null)`;

export function seedDemoDatabases(dir: string, rows = 500): { source: string; target: string } {
  fs.mkdirSync(dir, { recursive: true });
  const source = path.join(dir, "source.sqlite");
  const target = path.join(dir, "target.sqlite");
  const src = new Database(source);
  src.exec(CUSTOMERS_DDL);
  const insert = src.prepare("insert or replace into customers values (?, ?, ?, ?, ?, ?, ?, ?)");
  src.transaction(() => {
    for (let id = 1; id <= rows; id += 1) {
      const first = FIRST[id % FIRST.length];
      const last = LAST[(id * 3) % LAST.length];
      const micros = String((id * 7919) % 1_000_000).padStart(6, "0");
      const minute = String(id % 60).padStart(2, "0");
      const hour = String(8 + (id % 10)).padStart(2, "0");
      insert.run(
        id,
        `${first}.${last}.${id}@example.com`.toLowerCase(),
        first,
        last,
        CITIES[id % CITIES.length],
        COUNTRIES[id % COUNTRIES.length],
        (((id * 731) % 100000) / 100).toFixed(2),
        `2026-11-01T${hour}:${minute}:00.${micros}Z`,
      );
    }
  })();
  src.close();
  const dst = new Database(target);
  dst.exec(CUSTOMERS_DDL);
  dst.close();
  return { source, target };
}

/** The demo flow, as Node-RED flow JSON. */
export function demoFlow(source: string, target: string): object[] {
  const tab = "tributary_demo_tab";
  return [
    { id: tab, type: "tab", label: "Tributary demo", info: "A first sync: SQLite → SQLite." },
    {
      id: "demo_comment",
      type: "comment",
      z: tab,
      name: "Demo: 500 customers, SQLite → SQLite, incremental by updated_at",
      info:
        "The inject runs the source once after deploy and every minute. The source reads the " +
        "customers changed since its watermark in batches of 100 and the upsert writes them to " +
        "the target file. Change a row in demo/source.sqlite (and its updated_at) and the next " +
        "run moves only that row. Output 2 of the source carries each run's summary (debug tab).",
      x: 330,
      y: 40,
      wires: [],
    },
    {
      id: "demo_conn_source",
      type: "tributary-db-connection",
      z: tab,
      name: "demo source",
      client: "sqlite",
      filename: source,
    },
    {
      id: "demo_conn_target",
      type: "tributary-db-connection",
      z: tab,
      name: "demo target",
      client: "sqlite",
      filename: target,
    },
    {
      id: "demo_inject",
      type: "inject",
      z: tab,
      name: "every minute",
      props: [],
      repeat: "60",
      crontab: "",
      once: true,
      onceDelay: "1",
      topic: "",
      x: 130,
      y: 100,
      wires: [["demo_source"]],
    },
    {
      id: "demo_source",
      type: "tributary-db-source",
      z: tab,
      name: "customers",
      connection: "demo_conn_source",
      table: "customers",
      keyColumns: ["id"],
      cursorColumn: "updated_at",
      mode: "incremental",
      batchSize: 100,
      maxInFlight: 2,
      settleTimeout: 300,
      lookback: 0,
      deletedColumn: "",
      query: "",
      x: 320,
      y: 100,
      wires: [["demo_upsert"], ["demo_debug"]],
    },
    {
      id: "demo_upsert",
      type: "tributary-upsert",
      z: tab,
      name: "",
      connection: "demo_conn_target",
      table: "customers",
      keyColumns: ["id"],
      mode: "upsert",
      x: 530,
      y: 80,
      wires: [[], []],
    },
    {
      id: "demo_debug",
      type: "debug",
      z: tab,
      name: "run summary",
      active: true,
      tosidebar: true,
      console: false,
      complete: "payload",
      targetType: "msg",
      x: 540,
      y: 140,
      wires: [],
    },
  ];
}

/** Writes the demo into an empty user directory; returns false when flows exist. */
export function installDemo(userDir: string): boolean {
  const flows = path.join(userDir, "flows.json");
  if (fs.existsSync(flows)) return false;
  const { source, target } = seedDemoDatabases(path.join(userDir, "demo"));
  fs.writeFileSync(flows, JSON.stringify(demoFlow(source, target), null, 2));
  return true;
}
