/**
 * The state store of DESIGN.md §4: runs and watermarks (more tables come with later
 * features). A SQLite file in the Node-RED user directory by default, PostgreSQL
 * when TRIBUTARY_STATE_URL is set. Migrations run when the store opens.
 */
import path from "node:path";
import fs from "node:fs";
import knexFactory, { type Knex } from "knex";
import type { RunCounts, RunStatus, RunSummary, SyncMode, Value } from "./types";

export interface WatermarkPosition {
  /** The cursor value exactly as the database returned it (text or integer). */
  cursor: Value;
  /** The key of the last settled row at that cursor value, for keyset ties. */
  key: Value[];
}

export interface Watermark {
  sourceId: string;
  entity: string;
  cursorField: string;
  position: WatermarkPosition;
  runId: string | null;
  updatedAt: string;
}

export interface RunRow extends RunSummary {
  flowId: string | null;
}

const migrations: Record<string, Knex.Migration> = {
  "001_runs_and_watermarks": {
    async up(knex) {
      await knex.schema.createTable("tributary_runs", (t) => {
        t.string("run_id", 36).primary();
        t.string("source_id", 64).notNullable();
        t.string("flow_id", 64);
        t.string("entity", 255).notNullable();
        t.string("mode", 16).notNullable();
        t.string("status", 16).notNullable();
        t.text("counts").notNullable();
        t.string("started_at", 40).notNullable();
        t.string("finished_at", 40);
        t.text("error");
        t.index(["source_id", "started_at"]);
      });
      await knex.schema.createTable("tributary_watermarks", (t) => {
        t.string("source_id", 64).primary();
        t.string("entity", 255).notNullable();
        t.string("cursor_field", 255).notNullable();
        t.text("position").notNullable();
        t.string("run_id", 36);
        t.string("updated_at", 40).notNullable();
      });
    },
    async down(knex) {
      await knex.schema.dropTable("tributary_watermarks");
      await knex.schema.dropTable("tributary_runs");
    },
  },
};

const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(migrations).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => migrations[name],
};

export class StateStore {
  private constructor(
    readonly knex: Knex,
    readonly location: string,
  ) {}

  static async open(location: { url?: string; file?: string }): Promise<StateStore> {
    const knex = location.url
      ? knexFactory({ client: "pg", connection: location.url, pool: { min: 0, max: 4 } })
      : openSqlite(location.file ?? ":memory:");
    const store = new StateStore(knex, location.url ? redactUrl(location.url) : location.file!);
    await knex.migrate.latest({ migrationSource, tableName: "tributary_migrations" });
    return store;
  }

  async ping(): Promise<void> {
    await this.knex.raw("select 1");
  }

  async close(): Promise<void> {
    await this.knex.destroy();
  }

  async saveRun(run: RunRow): Promise<void> {
    const row = {
      run_id: run.runId,
      source_id: run.sourceId,
      flow_id: run.flowId,
      entity: run.entity,
      mode: run.mode,
      status: run.status,
      counts: JSON.stringify(run.counts),
      started_at: run.startedAt,
      finished_at: run.finishedAt,
      error: run.error ?? null,
    };
    await this.knex("tributary_runs").insert(row).onConflict("run_id").merge();
  }

  async getRun(runId: string): Promise<RunRow | undefined> {
    const row = await this.knex("tributary_runs").where({ run_id: runId }).first();
    return row ? toRun(row) : undefined;
  }

  async listRuns(filter: { sourceId?: string; limit?: number } = {}): Promise<RunRow[]> {
    const query = this.knex("tributary_runs").orderBy("started_at", "desc").limit(filter.limit ?? 50);
    if (filter.sourceId) query.where({ source_id: filter.sourceId });
    return (await query).map(toRun);
  }

  async getWatermark(sourceId: string): Promise<Watermark | undefined> {
    const row = await this.knex("tributary_watermarks").where({ source_id: sourceId }).first();
    if (!row) return undefined;
    return {
      sourceId: row.source_id,
      entity: row.entity,
      cursorField: row.cursor_field,
      position: JSON.parse(row.position) as WatermarkPosition,
      runId: row.run_id,
      updatedAt: row.updated_at,
    };
  }

  async saveWatermark(mark: Omit<Watermark, "updatedAt">): Promise<void> {
    const row = {
      source_id: mark.sourceId,
      entity: mark.entity,
      cursor_field: mark.cursorField,
      position: JSON.stringify(mark.position),
      run_id: mark.runId,
      updated_at: new Date().toISOString(),
    };
    await this.knex("tributary_watermarks").insert(row).onConflict("source_id").merge();
  }

  async deleteWatermark(sourceId: string): Promise<boolean> {
    return (await this.knex("tributary_watermarks").where({ source_id: sourceId }).delete()) > 0;
  }
}

function openSqlite(file: string): Knex {
  if (file !== ":memory:") fs.mkdirSync(path.dirname(file), { recursive: true });
  return knexFactory({
    client: "better-sqlite3",
    connection: { filename: file },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      // WAL lets the editor's reads go on while a run writes its watermark.
      afterCreate: (conn: { pragma(sql: string): unknown }, done: (err: Error | null, conn: unknown) => void) => {
        conn.pragma("journal_mode = WAL");
        conn.pragma("busy_timeout = 5000");
        done(null, conn);
      },
    },
  });
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "postgres (TRIBUTARY_STATE_URL)";
  }
}

interface RunDbRow {
  run_id: string;
  source_id: string;
  flow_id: string | null;
  entity: string;
  mode: string;
  status: string;
  counts: string;
  started_at: string;
  finished_at: string | null;
  error: string | null;
}

function toRun(row: RunDbRow): RunRow {
  return {
    runId: row.run_id,
    sourceId: row.source_id,
    flowId: row.flow_id,
    entity: row.entity,
    mode: row.mode as SyncMode,
    status: row.status as RunStatus,
    counts: JSON.parse(row.counts) as RunCounts,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    ...(row.error ? { error: row.error } : {}),
  };
}

const opened = new Map<string, Promise<StateStore>>();

/** The process's state store: one per location, shared by every node of the pack. */
export function stateStoreFor(userDir: string | undefined): Promise<StateStore> {
  const url = process.env.TRIBUTARY_STATE_URL;
  const file = path.join(userDir ?? process.cwd(), "tributary-state.sqlite");
  const location = url ? `url:${url}` : `file:${file}`;
  let store = opened.get(location);
  if (!store) {
    store = url ? StateStore.open({ url }) : StateStore.open({ file });
    store.catch(() => opened.delete(location));
    opened.set(location, store);
  }
  return store;
}

/** Closes every store this process opened (shutdown and tests). */
export async function closeStateStores(): Promise<void> {
  const stores = [...opened.values()];
  opened.clear();
  await Promise.all(stores.map(async (s) => (await s.catch(() => undefined))?.close()));
}
