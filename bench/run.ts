/**
 * `npm run bench`: the workload of shared/BENCH.md, every contender side by side in
 * one run. Each contender is its own process; figures are the sync as the process
 * measures it (wall), the whole process (exec to exit) and its peak RSS.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pgKnex, mysqlKnex } from "../test/support/databases";
import {
  createMysqlCustomers,
  createPgCustomers,
  mysqlChecksum,
  pgChecksum,
  touchPgCustomers,
} from "../test/support/customers";
import { SOURCE_TABLE, type ChildReport } from "./common";
import { MEMORY_FLAGS, memoryMode, type MemoryMode } from "../runtime/node-flags";

const root = path.resolve(__dirname, "..", "..");
const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const ROWS = args.includes("--scale") ? 1_000_000 : Number(flag("--rows") ?? 200_000);
const RUNS = Number(flag("--runs") ?? 3);
const ONLY = flag("--only")?.split(",");
/** The flow's batch size (the node's default when not given). */
const BATCH_SIZE = flag("--batch-size") ? Number(flag("--batch-size")) : undefined;

interface Contender {
  name: string;
  command(stateDir: string): string[];
  /** tributary: its memory mode, given as TRIBUTARY_MEMORY and as the mode's Node.js
   *  flags, so that the process measured is the one that syncs (with the variable alone
   *  it would start a second process; with the flags alone, one for the default mode). */
  memory?: MemoryMode;
  /** Wall seconds from the output, when the process measures it differently (tributary). */
  wall?(output: string): number | null;
}

/** The run's own seconds from `tributary run`'s summary line (start-up excluded). */
function runSeconds(out: string): number | null {
  const match = / (\d+\.\d+)s/.exec(out.split("\n").find((l) => / succeeded read=/.test(l)) ?? "");
  return match ? Number(match[1]) : null;
}

const CLI = path.join(root, "bin", "tributary.js");

/** The mode `tributary run` picks by itself here (fast, unless the container is small). */
const DEFAULT_MEMORY = memoryMode(process.env);

const ALL: Contender[] = [
  {
    name: "tributary",
    command: (dir) => [CLI, "run", flowFile(dir, false)],
    memory: DEFAULT_MEMORY,
    wall: runSeconds,
  },
  {
    name: "tributary (pipeline)",
    command: (dir) => [CLI, "run", flowFile(dir, true)],
    memory: DEFAULT_MEMORY,
    wall: runSeconds,
  },
  {
    name: "tributary (low memory)",
    command: (dir) => [CLI, "run", flowFile(dir, false)],
    memory: "low",
    wall: runSeconds,
  },
  {
    name: "hand-written",
    command: (dir) => [path.join(__dirname, "handwritten.js"), path.join(dir, "watermark.json")],
  },
  {
    name: "limit (staging)",
    command: (dir) => [
      path.join(__dirname, "limit.js"),
      "staging",
      path.join(dir, "watermark.json"),
    ],
  },
  {
    name: "limit (replace)",
    command: (dir) => [
      path.join(__dirname, "limit.js"),
      "replace",
      path.join(dir, "watermark.json"),
    ],
  },
];
const CONTENDERS = ALL.filter((c) => !ONLY || ONLY.some((o) => c.name.startsWith(o)));

/**
 * source → upsert, or with `pipeline` the full chain of issue 7: source → transform
 * (5 mappings and a JSON Schema) → conflict-resolve → upsert → audit-log. The
 * mappings keep every value, so both verify against the same checksum.
 */
function flowFile(dir: string, pipeline: boolean): string {
  const file = path.join(dir, "flow.json");
  const pg = new URL(process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test");
  const my = new URL(process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test");
  const conn = (id: string, client: string, u: URL) => ({
    id,
    type: "tributary-db-connection",
    z: "bench",
    client,
    host: u.hostname,
    port: u.port,
    database: u.pathname.slice(1),
    credentials: { user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) },
  });
  const source = {
    id: "bench_src",
    type: "tributary-db-source",
    z: "bench",
    name: "customers",
    connection: "bench_pg",
    table: SOURCE_TABLE,
    keyColumns: ["id"],
    cursorColumn: "updated_at",
    mode: "incremental",
    ...(BATCH_SIZE ? { batchSize: BATCH_SIZE } : {}),
    wires: [[pipeline ? "bench_tx" : "bench_up"], []],
  };
  const upsert = {
    id: "bench_up",
    type: "tributary-upsert",
    z: "bench",
    connection: "bench_my",
    table: SOURCE_TABLE,
    keyColumns: ["id"],
    mode: "upsert",
    wires: [pipeline ? ["bench_audit"] : [], []],
  };
  const chain = [
    {
      id: "bench_tx",
      type: "tributary-transform",
      z: "bench",
      mappings: [
        { target: "id", source: "id", type: "integer" },
        { target: "email", source: "email", type: "string" },
        { target: "first_name", source: "first_name", type: "string" },
        { target: "last_name", source: "last_name", type: "string" },
        { target: "country", source: "country", type: "string" },
      ],
      dropUnmapped: false,
      schema: JSON.stringify({
        type: "object",
        required: ["id", "email", "country"],
        properties: {
          id: { type: "integer" },
          email: { type: "string", pattern: "@" },
          country: { type: "string", minLength: 2, maxLength: 2 },
        },
      }),
      wires: [["bench_cr"], []],
    },
    {
      id: "bench_cr",
      type: "tributary-conflict-resolve",
      z: "bench",
      connection: "bench_my",
      table: SOURCE_TABLE,
      keyColumns: ["id"],
      strategy: "source-wins",
      wires: [["bench_up"], []],
    },
    { id: "bench_audit", type: "tributary-audit-log", z: "bench", retentionDays: 30, wires: [[]] },
  ];
  fs.writeFileSync(
    file,
    JSON.stringify([
      { id: "bench", type: "tab", label: "bench" },
      conn("bench_pg", "pg", pg),
      conn("bench_my", "mysql", my),
      source,
      upsert,
      ...(pipeline ? chain : []),
    ]),
  );
  return file;
}

interface Figure {
  wall: number;
  process: number;
  rssMb: number;
  rows: number;
}

function runChild(
  command: string[],
  dir: string,
  memory: MemoryMode | undefined,
): Promise<{ out: string; processSeconds: number; peakMb: number; code: number | null }> {
  return new Promise((resolve) => {
    const started = performance.now();
    // BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles each contender.
    const nodeArgs = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
    const flags = memory ? MEMORY_FLAGS[memory] : [];
    const child = spawn(process.execPath, [...nodeArgs, ...flags, ...command], {
      env: {
        ...process.env,
        TRIBUTARY_USER_DIR: path.join(dir, "user"),
        ...(memory ? { TRIBUTARY_MEMORY: memory } : {}),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let peakKb = 0;
    // VmHWM is the process's peak resident set; sampled, and read once more at the end.
    const poll = setInterval(() => {
      try {
        const status = fs.readFileSync(`/proc/${child.pid}/status`, "utf8");
        peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
      } catch {
        // exited
      }
    }, 50);
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => {
      clearInterval(poll);
      resolve({
        out,
        processSeconds: (performance.now() - started) / 1000,
        peakMb: peakKb / 1024,
        code,
      });
    });
  });
}

async function job(
  contender: Contender,
  dir: string,
  expectedRows: number,
): Promise<Figure | string> {
  const result = await runChild(contender.command(dir), dir, contender.memory);
  if (result.code !== 0) return `exit ${result.code}: ${result.out.slice(-300)}`;
  const line = result.out.split("\n").find((l) => l.startsWith("BENCH "));
  const self = line ? (JSON.parse(line.slice(6)) as ChildReport) : null;
  const wall = contender.wall?.(result.out) ?? self?.wallSeconds ?? null;
  if (wall === null) return `no timing in output: ${result.out.slice(-300)}`;
  const pg = pgKnex();
  const [a, b] = [await pgChecksum(pg, SOURCE_TABLE), await mysqlChecksum(SOURCE_TABLE)];
  await pg.destroy();
  if (a.count !== b.count || a.md5 !== b.md5)
    return `FAILED VERIFY (${b.count} of ${a.count} rows)`;
  return {
    wall,
    process: result.processSeconds,
    rssMb: Math.max(result.peakMb, self?.maxRssMb ?? 0),
    rows: expectedRows,
  };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)];

async function main() {
  const results = new Map<string, { initial: Figure[]; incremental: Figure[]; errors: string[] }>();
  for (let run = 1; run <= RUNS; run += 1) {
    for (const contender of CONTENDERS) {
      const entry = results.get(contender.name) ?? { initial: [], incremental: [], errors: [] };
      results.set(contender.name, entry);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-bench-"));
      const pg = pgKnex();
      const my = mysqlKnex();
      await createPgCustomers(pg, SOURCE_TABLE, ROWS);
      await createMysqlCustomers(my, SOURCE_TABLE);
      await my.destroy();
      process.stderr.write(`run ${run}/${RUNS} ${contender.name}: initial… `);
      const initial = await job(contender, dir, ROWS);
      if (typeof initial === "string") entry.errors.push(`initial: ${initial}`);
      else entry.initial.push(initial);
      const changed = await touchPgCustomers(pg, SOURCE_TABLE, 10);
      await pg.destroy();
      process.stderr.write("incremental… ");
      const incremental = await job(contender, dir, changed);
      if (typeof incremental === "string") entry.errors.push(`incremental: ${incremental}`);
      else entry.incremental.push(incremental);
      process.stderr.write("done\n");
    }
  }
  const lines: string[] = [];
  lines.push(
    `N = ${ROWS.toLocaleString("en-US")}, ${RUNS} run(s) each; rows/s = rows moved / wall seconds; medians (min in brackets)`,
    "",
  );
  lines.push(
    "| contender | job | verified | wall s | rows/s | process s | peak RSS MB |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  );
  const medians = new Map<string, number>();
  for (const [name, entry] of results) {
    for (const jobName of ["initial", "incremental"] as const) {
      const figs = entry[jobName];
      if (figs.length === 0) {
        lines.push(`| ${name} | ${jobName} | 0/${RUNS} | – | – | – | – |`);
        continue;
      }
      const rate = figs.map((f) => f.rows / f.wall);
      medians.set(`${name}/${jobName}`, median(rate));
      lines.push(
        `| ${name} | ${jobName} | ${figs.length}/${RUNS} | ${median(figs.map((f) => f.wall)).toFixed(2)} (${Math.min(...figs.map((f) => f.wall)).toFixed(2)}) | ` +
          `${Math.round(median(rate)).toLocaleString("en-US")} (${Math.round(Math.max(...rate)).toLocaleString("en-US")}) | ` +
          `${median(figs.map((f) => f.process)).toFixed(2)} | ${Math.round(median(figs.map((f) => f.rssMb)))} |`,
      );
    }
    for (const error of entry.errors)
      lines.push(`| ${name} | ${error.replace(/\|/g, "/").replace(/\n/g, " ")} | | | | | |`);
  }
  lines.push("");
  for (const jobName of ["initial", "incremental"]) {
    const t = medians.get(`tributary/${jobName}`);
    const h = medians.get(`hand-written/${jobName}`);
    const l = medians.get(`limit (staging)/${jobName}`);
    if (t && h)
      lines.push(`- ${jobName}: tributary / hand-written = ${(t / h).toFixed(2)}× (target ≥ 1.6×)`);
    if (t && l)
      lines.push(
        `- ${jobName}: tributary / limit (staging) = ${(t / l).toFixed(2)}×${jobName === "initial" ? " (target ≥ 0.9×)" : ""}`,
      );
    const full = medians.get(`tributary (pipeline)/${jobName}`);
    if (t && full)
      lines.push(
        `- ${jobName}: tributary (pipeline) / tributary = ${(full / t).toFixed(2)}× (target ≥ 0.5×)`,
      );
    const low = medians.get(`tributary (low memory)/${jobName}`);
    if (t && low)
      lines.push(
        `- ${jobName}: tributary (low memory) / tributary = ${(low / t).toFixed(2)}×` +
          (h ? `, / hand-written = ${(low / h).toFixed(2)}×` : ""),
      );
  }
  const pg = pgKnex();
  const my = mysqlKnex();
  const pgVersion = (await pg.raw("select version() as v")).rows[0].v as string;
  const myVersion = ((await my.raw("select version() as v")) as Array<Array<{ v: string }>>)[0][0]
    .v;
  await pg.destroy();
  await my.destroy();
  lines.push(
    "",
    `Machine: ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node.js ${process.version}, ${pgVersion.split(" on ")[0]}, MariaDB ${myVersion}`,
  );
  const text = lines.join("\n");
  console.log(text);
  fs.writeFileSync(
    path.join(root, "bench", "RESULTS.md"),
    `# Benchmark results\n\n${new Date().toISOString().slice(0, 10)}, \`npm run bench ${args.join(" ")}\`\n\n${text}\n`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
