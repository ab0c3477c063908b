/**
 * The state store of DESIGN.md §4: runs and watermarks (more tables come with later
 * features). A SQLite file in the Node-RED user directory by default, PostgreSQL
 * when TRIBUTARY_STATE_URL is set. Migrations run when the store opens.
 */
import path from "node:path";
import fs from "node:fs";
import knexFactory, { type Knex } from "knex";
import type {
  OutcomeAction,
  RunCounts,
  RunStatus,
  RunSummary,
  SyncMode,
  SyncRecord,
  Value,
} from "./types";
import { TributaryError } from "./db/errors";
import { SqliteWorker, type SqliteParam } from "./sqlite-worker";

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

export interface RunFilter {
  sourceId?: string;
  flowId?: string;
  status?: RunStatus;
  since?: string;
  limit?: number;
  cursor?: string;
}

export interface AuditEntry {
  id?: number;
  runId: string;
  batch: number;
  nodeId: string;
  key: Value[];
  action: OutcomeAction;
  error?: string;
  createdAt?: string;
}

export interface SyncState {
  key: string;
  sourceHash: string | null;
  targetHash: string | null;
  syncedAt: string;
}

export type ReviewStatus = "open" | "resolved" | "applied" | "superseded";
export type ReviewResolution = "source" | "target" | "skip";

export interface ReviewItem {
  id: number;
  scope: string;
  nodeId: string;
  key: Value[];
  sourceRecord: SyncRecord;
  targetRecord: SyncRecord | null;
  status: ReviewStatus;
  resolution?: ReviewResolution;
  resolvedBy?: string;
  createdAt: string;
  resolvedAt?: string;
}

/** Opaque page cursors: base64url of the sort values of the last item. */
export function encodeCursor(values: string[]): string {
  return Buffer.from(JSON.stringify(values)).toString("base64url");
}

export function decodeCursor(cursor: string): string[] {
  try {
    const values = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(values) && values.every((v) => typeof v === "string")) return values;
  } catch {
    // fall through
  }
  throw new TributaryError(
    "bad-request",
    "cursor is not valid: pass the nextCursor of the previous page",
  );
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

migrations["002_audit_sync_state_review_tokens_leases"] = {
  async up(knex) {
    await knex.schema.createTable("tributary_audit", (t) => {
      t.increments("id").primary();
      t.string("run_id", 36).notNullable();
      t.integer("batch").notNullable();
      t.string("node_id", 64).notNullable();
      t.text("record_key").notNullable();
      t.string("action", 16).notNullable();
      t.text("error");
      t.string("created_at", 40).notNullable();
      t.index(["run_id", "id"]);
      t.index(["created_at"]);
    });
    // Per-record sync state: what each side looked like when the sync last wrote it.
    await knex.schema.createTable("tributary_sync_state", (t) => {
      t.string("scope", 255).notNullable();
      t.string("record_key", 512).notNullable();
      t.string("source_hash", 64);
      t.string("target_hash", 64);
      t.string("synced_at", 40).notNullable();
      t.primary(["scope", "record_key"]);
    });
    await knex.schema.createTable("tributary_review", (t) => {
      t.increments("id").primary();
      t.string("scope", 255).notNullable();
      t.string("node_id", 64).notNullable();
      t.text("record_key").notNullable();
      t.text("source_record").notNullable();
      t.text("target_record");
      t.string("status", 16).notNullable();
      t.string("resolution", 16);
      t.string("resolved_by", 255);
      t.string("created_at", 40).notNullable();
      t.string("resolved_at", 40);
      t.index(["status", "id"]);
    });
    await knex.schema.createTable("tributary_tokens", (t) => {
      t.string("connection_id", 64).primary();
      t.string("provider", 32).notNullable();
      t.text("sealed").notNullable();
      t.string("updated_at", 40).notNullable();
    });
    await knex.schema.createTable("tributary_leases", (t) => {
      t.string("source_id", 64).primary();
      t.string("holder", 255).notNullable();
      t.string("expires_at", 40).notNullable();
    });
  },
  async down(knex) {
    for (const table of [
      "tributary_leases",
      "tributary_tokens",
      "tributary_review",
      "tributary_sync_state",
      "tributary_audit",
    ]) {
      await knex.schema.dropTable(table);
    }
  },
};

/**
 * SQLite: the sync state, keyed by text, as a WITHOUT ROWID table, so a state is one
 * B-tree entry rather than a row plus a primary-key index entry: its batch upserts and
 * lookups do about a fifth less work. PostgreSQL keeps its table.
 */
migrations["003_sqlite_sync_state_without_rowid"] = {
  async up(knex) {
    if ((knex.client as { config: { client: string } }).config.client !== "better-sqlite3") return;
    await knex.raw(
      `create table tributary_sync_state_new (scope varchar(255) not null,
        record_key varchar(512) not null, source_hash varchar(64), target_hash varchar(64),
        synced_at varchar(40) not null, primary key (scope, record_key)) without rowid`,
    );
    await knex.raw(
      `insert into tributary_sync_state_new (scope, record_key, source_hash, target_hash, synced_at)
        select scope, record_key, source_hash, target_hash, synced_at from tributary_sync_state`,
    );
    await knex.schema.dropTable("tributary_sync_state");
    await knex.schema.renameTable("tributary_sync_state_new", "tributary_sync_state");
  },
  async down() {
    // The WITHOUT ROWID table serves the older code as it is.
  },
};

const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(migrations).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => migrations[name],
};

const AUDIT_COLUMNS = ["record_key", "action", "error"];

export class StateStore {
  /** A SQLite file (one connection, prepared statements) rather than PostgreSQL. */
  private sqlite = false;
  /** SQLite file: the per-record statements run on a worker thread (see sqlite-worker). */
  private worker: SqliteWorker | null = null;
  /** A second worker for a batch's reads (sync states): WAL lets them go on while the
   *  first writes, so a read never waits behind the writes queued before it. Started
   *  on first use: only conflict-resolve reads sync states, and a thread costs ~9 MB. */
  private reader: SqliteWorker | null = null;
  private readerFile: string | null = null;

  private constructor(
    readonly knex: Knex,
    readonly location: string,
  ) {}

  static async open(location: { url?: string; file?: string }): Promise<StateStore> {
    const knex = location.url
      ? knexFactory({ client: "pg", connection: location.url, pool: { min: 0, max: 4 } })
      : openSqlite(location.file ?? ":memory:");
    const store = new StateStore(knex, location.url ? redactUrl(location.url) : location.file!);
    store.sqlite = !location.url;
    await knex.migrate.latest({ migrationSource, tableName: "tributary_migrations" });
    const file = location.file ?? ":memory:";
    // A memory database is private to its connection: no worker can share it.
    if (store.sqlite && file !== ":memory:") {
      store.worker = new SqliteWorker(file);
      store.readerFile = file;
      // A thread takes tens of milliseconds to load SQLite and open the file: pay that
      // here, at start-up, not in the first run. A thread that fails to start is
      // marked crashed, and the main connection does its work.
      await store.worker.all("select 1", []).catch(() => undefined);
    }
    return store;
  }

  /** Starts the thread for sync-state reads and waits until it answers, so the first
   *  batch does not pay for it (conflict-resolve calls this at deploy). */
  async prepareReads(): Promise<void> {
    await this.readThread()
      ?.all("select 1", [])
      .catch(() => undefined);
  }

  private readThread(): SqliteWorker | null {
    if (!this.readerFile) return null;
    this.reader ??= new SqliteWorker(this.readerFile);
    return this.reader.crashed ? null : this.reader;
  }

  async ping(): Promise<void> {
    await this.knex.raw("select 1");
  }

  /** The worker, unless its thread died: then the main connection carries on (a
   *  batch that was in it fails; the next ones are written, on the main thread). */
  private bulk(): SqliteWorker | null {
    return this.worker && !this.worker.crashed ? this.worker : null;
  }

  async close(): Promise<void> {
    this.readerFile = null; // no reads thread started after this
    await Promise.all([this.worker?.close(), this.reader?.close()]);
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
    await this.write(this.knex("tributary_runs").insert(row).onConflict("run_id").merge());
  }

  /**
   * A write a run makes (run rows, watermarks, applied reviews) goes through the worker
   * when there is one: better-sqlite3 waits for a lock synchronously, so the main
   * connection writing while the worker holds the lock would stall the event loop.
   */
  private async write(query: Knex.QueryBuilder): Promise<void> {
    const worker = this.bulk();
    if (!worker) {
      await query;
      return;
    }
    const { sql, bindings } = query.toSQL().toNative();
    await worker.run(sql, bindings as SqliteParam[]);
  }

  async getRun(runId: string): Promise<RunRow | undefined> {
    const row = await this.knex("tributary_runs").where({ run_id: runId }).first();
    return row ? toRun(row) : undefined;
  }

  /** Newest first; `cursor` is the `nextCursor` of the previous page. */
  async listRuns(filter: RunFilter = {}): Promise<{ runs: RunRow[]; nextCursor: string | null }> {
    const limit = Math.min(Math.max(filter.limit ?? 50, 1), 500);
    const query = this.knex("tributary_runs").orderBy([
      { column: "started_at", order: "desc" },
      { column: "run_id", order: "desc" },
    ]);
    if (filter.sourceId) query.where({ source_id: filter.sourceId });
    if (filter.flowId) query.where({ flow_id: filter.flowId });
    if (filter.status) query.where({ status: filter.status });
    if (filter.since) query.where("started_at", ">=", filter.since);
    if (filter.cursor) {
      const [startedAt, runId] = decodeCursor(filter.cursor);
      query.where((qb) =>
        qb
          .where("started_at", "<", startedAt)
          .orWhere((inner) => inner.where("started_at", startedAt).where("run_id", "<", runId)),
      );
    }
    const rows = (await query.limit(limit + 1)).map(toRun);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      runs: page,
      nextCursor: rows.length > limit && last ? encodeCursor([last.startedAt, last.runId]) : null,
    };
  }

  async listWatermarks(): Promise<Watermark[]> {
    const rows = await this.knex("tributary_watermarks").orderBy("source_id");
    return rows.map((row) => ({
      sourceId: row.source_id,
      entity: row.entity,
      cursorField: row.cursor_field,
      position: JSON.parse(row.position) as WatermarkPosition,
      runId: row.run_id,
      updatedAt: row.updated_at,
    }));
  }

  async addAudit(entries: AuditEntry[]): Promise<void> {
    const createdAt = new Date().toISOString();
    // Entries of one batch share run, batch, node and time: those travel once per run
    // of such entries, compared field by field rather than through a key per entry.
    let shared: Record<string, SqliteParam> | null = null;
    let rows: SqliteParam[][] = [];
    for (const e of entries) {
      const at = e.createdAt ?? createdAt;
      if (
        !shared ||
        shared.run_id !== e.runId ||
        shared.batch !== e.batch ||
        shared.node_id !== e.nodeId ||
        shared.created_at !== at
      ) {
        if (shared) await this.insertMany("tributary_audit", shared, AUDIT_COLUMNS, rows);
        shared = { run_id: e.runId, batch: e.batch, node_id: e.nodeId, created_at: at };
        rows = [];
      }
      rows.push([JSON.stringify(e.key), e.action, e.error ?? null]);
    }
    if (shared) await this.insertMany("tributary_audit", shared, AUDIT_COLUMNS, rows);
  }

  async listAudit(
    runId: string,
    page: { limit?: number; cursor?: string } = {},
  ): Promise<{ entries: AuditEntry[]; nextCursor: string | null }> {
    const limit = Math.min(Math.max(page.limit ?? 100, 1), 1000);
    const query = this.knex("tributary_audit")
      .where({ run_id: runId })
      .orderBy("id")
      .limit(limit + 1);
    if (page.cursor) query.where("id", ">", Number(decodeCursor(page.cursor)[0]));
    const rows = await query;
    const entries = rows.slice(0, limit).map((r) => ({
      id: r.id as number,
      runId: r.run_id,
      batch: r.batch,
      nodeId: r.node_id,
      key: JSON.parse(r.record_key) as Value[],
      action: r.action,
      ...(r.error ? { error: r.error } : {}),
      createdAt: r.created_at,
    }));
    const last = entries[entries.length - 1];
    return {
      entries,
      nextCursor: rows.length > limit && last ? encodeCursor([String(last.id)]) : null,
    };
  }

  /** Deletes audit entries older than `before` (ISO 8601); returns how many. */
  async pruneAudit(before: string): Promise<number> {
    return this.knex("tributary_audit").where("created_at", "<", before).delete();
  }

  async getSyncStates(scope: string, keys: string[]): Promise<Map<string, SyncState>> {
    const states = new Map<string, SyncState>();
    const found = (rows: Array<Record<string, unknown>>) => {
      for (const r of rows) {
        states.set(r.record_key as string, {
          key: r.record_key as string,
          sourceHash: r.source_hash as string | null,
          targetHash: r.target_hash as string | null,
          syncedAt: r.synced_at as string,
        });
      }
    };
    const worker = this.readThread() ?? this.bulk();
    if (worker) {
      // The keys as one JSON parameter: one statement for the batch.
      found(
        await worker.all(
          "select record_key, source_hash, target_hash, synced_at from tributary_sync_state " +
            "where scope = ? and record_key in (select value from json_each(?))",
          [scope, JSON.stringify(keys)],
        ),
      );
      return states;
    }
    for (let i = 0; i < keys.length; i += 500) {
      const part = keys.slice(i, i + 500);
      found(await this.knex("tributary_sync_state").where({ scope }).whereIn("record_key", part));
    }
    return states;
  }

  async saveSyncStates(scope: string, states: Array<Omit<SyncState, "syncedAt">>): Promise<void> {
    await this.insertMany(
      "tributary_sync_state",
      { scope, synced_at: new Date().toISOString() },
      ["record_key", "source_hash", "target_hash"],
      states.map((s) => [s.key, s.sourceHash, s.targetHash]),
      ["scope", "record_key"],
    );
  }

  /**
   * Inserts rows: the `shared` values, the same for every row, and per row the values
   * of `columns`; merging on `conflict` columns when given. On PostgreSQL, multi-row
   * statements in chunks.
   */
  private async insertMany(
    table: string,
    shared: Record<string, SqliteParam>,
    columns: string[],
    rows: SqliteParam[][],
    conflict?: string[],
  ): Promise<void> {
    if (rows.length === 0) return;
    const sharedColumns = Object.keys(shared);
    if (!this.sqlite) {
      for (let i = 0; i < rows.length; i += 500) {
        const objects = rows
          .slice(i, i + 500)
          .map((row) => ({ ...shared, ...Object.fromEntries(columns.map((c, j) => [c, row[j]])) }));
        const insert = this.knex(table).insert(objects);
        await (conflict ? insert.onConflict(conflict).merge() : insert);
      }
      return;
    }
    // One statement per call: the rows travel as one JSON array that SQLite unpacks
    // itself (json_each), far cheaper than a statement per row or per chunk; the shared
    // values are bound once rather than repeated in every row.
    const all = [...sharedColumns, ...columns];
    const quoted = (c: string) => `"${c.replace(/"/g, '""')}"`;
    const sql =
      `insert into ${quoted(table)} (${all.map(quoted).join(", ")}) ` +
      `select ${[...sharedColumns.map(() => "?"), ...columns.map((_c, i) => `value ->> ${i}`)].join(", ")} ` +
      `from json_each(?) where true` +
      (conflict
        ? ` on conflict (${conflict.map(quoted).join(", ")}) do update set ${all
            .filter((c) => !conflict.includes(c))
            .map((c) => `${quoted(c)} = excluded.${quoted(c)}`)
            .join(", ")}`
        : "");
    const params = [...sharedColumns.map((c) => shared[c]), JSON.stringify(rows)];
    const worker = this.bulk();
    await (worker ? worker.run(sql, params) : this.knex.raw(sql, params));
  }

  async addReview(item: Omit<ReviewItem, "id" | "status" | "createdAt">): Promise<number> {
    const row = {
      scope: item.scope,
      node_id: item.nodeId,
      record_key: JSON.stringify(item.key),
      source_record: JSON.stringify(item.sourceRecord),
      target_record: item.targetRecord ? JSON.stringify(item.targetRecord) : null,
      status: "open",
      created_at: new Date().toISOString(),
    };
    // One open item per record: a newer conflict replaces the older one.
    await this.knex("tributary_review")
      .where({ scope: item.scope, record_key: row.record_key, status: "open" })
      .update({ status: "superseded" });
    const [inserted] = await this.knex("tributary_review").insert(row).returning("id");
    return typeof inserted === "object"
      ? Number((inserted as { id: number }).id)
      : Number(inserted);
  }

  async listReview(
    filter: { status?: ReviewStatus; nodeId?: string; scope?: string; limit?: number } = {},
  ): Promise<ReviewItem[]> {
    const query = this.knex("tributary_review")
      .orderBy("id")
      .limit(Math.min(filter.limit ?? 100, 1000));
    if (filter.status) query.where({ status: filter.status });
    if (filter.nodeId) query.where({ node_id: filter.nodeId });
    if (filter.scope) query.where({ scope: filter.scope });
    return (await query).map(toReview);
  }

  async getReview(id: number): Promise<ReviewItem | undefined> {
    const row = await this.knex("tributary_review").where({ id }).first();
    return row ? toReview(row) : undefined;
  }

  /** Records an analyst's decision; returns false when the item is not open. */
  async resolveReview(id: number, resolution: ReviewResolution, by: string): Promise<boolean> {
    const changed = await this.knex("tributary_review").where({ id, status: "open" }).update({
      status: "resolved",
      resolution,
      resolved_by: by,
      resolved_at: new Date().toISOString(),
    });
    return changed > 0;
  }

  /** Marks resolved items as applied once their resolution was written. */
  async markReviewApplied(ids: number[]): Promise<void> {
    if (ids.length)
      await this.write(
        this.knex("tributary_review").whereIn("id", ids).update({ status: "applied" }),
      );
  }

  async saveToken(connectionId: string, provider: string, sealed: string): Promise<void> {
    await this.knex("tributary_tokens")
      .insert({
        connection_id: connectionId,
        provider,
        sealed,
        updated_at: new Date().toISOString(),
      })
      .onConflict("connection_id")
      .merge();
  }

  async getToken(
    connectionId: string,
  ): Promise<{ provider: string; sealed: string; updatedAt: string } | undefined> {
    const row = await this.knex("tributary_tokens").where({ connection_id: connectionId }).first();
    return row
      ? { provider: row.provider, sealed: row.sealed, updatedAt: row.updated_at }
      : undefined;
  }

  async listTokens(): Promise<Array<{ connectionId: string; provider: string; sealed: string }>> {
    const rows = await this.knex("tributary_tokens");
    return rows.map((r) => ({
      connectionId: r.connection_id,
      provider: r.provider,
      sealed: r.sealed,
    }));
  }

  async deleteToken(connectionId: string): Promise<boolean> {
    return (
      (await this.knex("tributary_tokens").where({ connection_id: connectionId }).delete()) > 0
    );
  }

  /**
   * Re-seals every stored token in one transaction (credential secret rotation):
   * `reseal` returns the new sealed text of a row, or null to leave it as it is.
   * If it throws for any row, nothing is changed. Returns how many rows changed.
   */
  async resealTokens(
    reseal: (row: { connectionId: string; provider: string; sealed: string }) => string | null,
  ): Promise<number> {
    return this.knex.transaction(async (trx) => {
      const rows = await trx("tributary_tokens").forUpdate();
      let changed = 0;
      const updatedAt = new Date().toISOString();
      for (const r of rows) {
        const sealed = reseal({
          connectionId: r.connection_id,
          provider: r.provider,
          sealed: r.sealed,
        });
        if (sealed === null) continue;
        await trx("tributary_tokens")
          .where({ connection_id: r.connection_id })
          .update({ sealed, updated_at: updatedAt });
        changed++;
      }
      return changed;
    });
  }

  /**
   * Connection events (revoke) go to the audit table under the pseudo run id
   * "connection", with the connection id as node id, the user as key and the reason
   * in the error column: no migration, and the same retention as other entries.
   */
  async addConnectionAudit(event: {
    connectionId: string;
    action: string;
    by: string;
    reason: string;
  }): Promise<void> {
    await this.knex("tributary_audit").insert({
      run_id: CONNECTION_AUDIT_RUN,
      batch: 0,
      node_id: event.connectionId,
      record_key: JSON.stringify([event.by]),
      action: event.action.slice(0, 16),
      error: event.reason,
      created_at: new Date().toISOString(),
    });
  }

  async listConnectionAudit(
    connectionId: string,
  ): Promise<Array<{ action: string; by: string; reason: string; createdAt: string }>> {
    const rows = await this.knex("tributary_audit")
      .where({ run_id: CONNECTION_AUDIT_RUN, node_id: connectionId })
      .orderBy("id");
    return rows.map((r) => ({
      action: r.action as string,
      by: String((JSON.parse(r.record_key) as unknown[])[0] ?? ""),
      reason: (r.error as string | null) ?? "",
      createdAt: r.created_at as string,
    }));
  }

  /** Takes (or renews) the lease of a source for `ttlMs`; false while another holder has it. */
  async acquireLease(sourceId: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = new Date();
    const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
    return this.knex.transaction(async (trx) => {
      const row = await trx("tributary_leases").where({ source_id: sourceId }).forUpdate().first();
      if (row && row.holder !== holder && row.expires_at > now.toISOString()) return false;
      if (row)
        await trx("tributary_leases")
          .where({ source_id: sourceId })
          .update({ holder, expires_at: expiresAt });
      else
        await trx("tributary_leases").insert({
          source_id: sourceId,
          holder,
          expires_at: expiresAt,
        });
      return true;
    });
  }

  async releaseLease(sourceId: string, holder: string): Promise<void> {
    await this.knex("tributary_leases").where({ source_id: sourceId, holder }).delete();
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
    await this.write(this.knex("tributary_watermarks").insert(row).onConflict("source_id").merge());
  }

  async deleteWatermark(sourceId: string): Promise<boolean> {
    return (await this.knex("tributary_watermarks").where({ source_id: sourceId }).delete()) > 0;
  }
}

/** The audit table's run id for connection events (see addConnectionAudit). */
const CONNECTION_AUDIT_RUN = "connection";

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
      afterCreate: (
        conn: { pragma(sql: string): unknown },
        done: (err: Error | null, conn: unknown) => void,
      ) => {
        conn.pragma("journal_mode = WAL");
        // With WAL, NORMAL syncs at checkpoints, not at every commit; a power cut may
        // lose the last commits (a watermark then re-reads rows, which upserts absorb)
        // but never corrupts the file.
        conn.pragma("synchronous = NORMAL");
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

interface ReviewDbRow {
  id: number;
  scope: string;
  node_id: string;
  record_key: string;
  source_record: string;
  target_record: string | null;
  status: string;
  resolution: string | null;
  resolved_by: string | null;
  created_at: string;
  resolved_at: string | null;
}

function toReview(row: ReviewDbRow): ReviewItem {
  return {
    id: Number(row.id),
    scope: row.scope,
    nodeId: row.node_id,
    key: JSON.parse(row.record_key) as Value[],
    sourceRecord: JSON.parse(row.source_record) as SyncRecord,
    targetRecord: row.target_record ? (JSON.parse(row.target_record) as SyncRecord) : null,
    status: row.status as ReviewStatus,
    ...(row.resolution ? { resolution: row.resolution as ReviewResolution } : {}),
    ...(row.resolved_by ? { resolvedBy: row.resolved_by } : {}),
    createdAt: row.created_at,
    ...(row.resolved_at ? { resolvedAt: row.resolved_at } : {}),
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
