/**
 * Writes batches to one table: insert, update or upsert by key, one transaction per
 * batch, statements chunked under the dialect's bound-parameter limit.
 */
import type { Knex } from "knex";
import {
  isDeleted,
  hasFieldNames,
  type Outcome,
  type OutcomeAction,
  type SyncRecord,
  type Value,
} from "../types";
import { requireColumns, type DbConnection } from "./connection";
import type { BulkChunk, ColumnInfo, WriteChunk } from "./dialect";
import { TributaryError } from "./errors";
import { existingKeys, keyText } from "./sql";

const MAX_ATTEMPTS = 4;
/** Batches from this size on take the dialect's bulk path, where it has one. */
const BULK_MIN_ROWS = 500;

function backoffMs(attempt: number): number {
  const base = 100 * 2 ** (attempt - 1);
  return base / 2 + Math.random() * base;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export type WriteMode = "insert" | "update" | "upsert";

export interface TableWriterOptions {
  table: string;
  keyColumns: string[];
  mode: WriteMode;
  /** Write only these columns (plus the key); empty: every field with a column. */
  columns?: string[];
  /** Soft-deleted records: "mark" writes them like others, "delete" removes the row. */
  deletes?: "mark" | "delete";
}

export interface FailedRecord {
  record: SyncRecord;
  error: string;
}

export interface WriteResult {
  outcomes: Outcome[];
  failed: FailedRecord[];
  /** Record fields the table has no column for (not written). */
  ignoredFields: string[];
}

export class TableWriter {
  constructor(
    private readonly connection: DbConnection,
    private readonly options: TableWriterOptions,
  ) {}

  /** Checks the table and key columns; throws a clear error. */
  async check(): Promise<Map<string, ColumnInfo>> {
    const info = await this.connection.describe(this.options.table);
    requireColumns(info, this.options.keyColumns, "key column", this.connection.label);
    const only = this.options.columns ?? [];
    requireColumns(info, only, "column", this.connection.label);
    const wanted = new Set([...only, ...this.options.keyColumns]);
    return new Map(
      info.columns.filter((c) => only.length === 0 || wanted.has(c.name)).map((c) => [c.name, c]),
    );
  }

  async write(records: SyncRecord[], dryRun = false, deletedField?: string): Promise<WriteResult> {
    const columns = await this.check();
    const { keyColumns } = this.options;
    const failed: FailedRecord[] = [];
    const outcomes: Outcome[] = [];
    const ignored = new Set<string>();
    const latest = new Map<string, SyncRecord>();
    const single = keyColumns.length === 1 ? keyColumns[0] : null;
    let lastKeys: string[] = [];
    for (const record of records) {
      if (keyColumns.some((k) => record[k] === undefined || record[k] === null)) {
        const missing = keyColumns.filter((k) => record[k] === undefined || record[k] === null);
        const error = `record has no value for key column "${missing.join('", "')}"`;
        failed.push({ record, error });
        outcomes.push({ key: keyColumns.map((k) => record[k] ?? null), action: "failed", error });
        continue;
      }
      // The last version of a key in a batch wins, as it would row by row.
      const id = single
        ? String(record[single])
        : JSON.stringify(keyColumns.map((k) => String(record[k])));
      latest.set(id, record);
      if (hasFieldNames(record, lastKeys)) continue; // a shape already checked
      lastKeys = Object.keys(record);
      for (const field of lastKeys) if (!columns.has(field)) ignored.add(field);
    }
    let unique = [...latest.values()];
    if (deletedField && this.options.deletes === "delete") {
      const deleted = unique.filter((r) => isDeleted(r[deletedField]));
      unique = unique.filter((r) => !isDeleted(r[deletedField]));
      outcomes.push(...(await this.deleteRows(deleted, dryRun)));
    }
    if (dryRun) {
      outcomes.push(...(await this.wouldWrite(unique)));
      return { outcomes, failed, ignoredFields: [...ignored] };
    }
    const written = await this.writeIsolating(unique, columns);
    outcomes.push(...written.outcomes);
    failed.push(...written.failed);
    return { outcomes, failed, ignoredFields: [...ignored] };
  }

  /**
   * One bad row never sinks a batch: when a transaction fails for a reason of the
   * data (a constraint, a value the column rejects), the batch is split in halves
   * and each half retried, down to the rows that fail alone. Connection-level
   * failures are not isolated: the whole batch fails and the run stops.
   */
  private async writeIsolating(
    records: SyncRecord[],
    columns: Map<string, ColumnInfo>,
  ): Promise<{ outcomes: Outcome[]; failed: FailedRecord[] }> {
    if (records.length === 0) return { outcomes: [], failed: [] };
    try {
      return { outcomes: await this.writeWithRetry(records, columns), failed: [] };
    } catch (err) {
      const { dialect } = this.connection;
      if (dialect.classifyError(err) || dialect.isTransient(err) || err instanceof TributaryError) {
        throw this.connection.explain(err, `writing to table "${this.options.table}"`);
      }
      if (records.length === 1) {
        const error = this.connection.explain(err).message;
        return {
          outcomes: [{ key: keyOf(records[0], this.options.keyColumns), action: "failed", error }],
          failed: [{ record: records[0], error }],
        };
      }
      const middle = Math.ceil(records.length / 2);
      const first = await this.writeIsolating(records.slice(0, middle), columns);
      const second = await this.writeIsolating(records.slice(middle), columns);
      return {
        outcomes: [...first.outcomes, ...second.outcomes],
        failed: [...first.failed, ...second.failed],
      };
    }
  }

  /** Deadlocks, serialization failures and dropped connections are retried with
   *  jittered backoff; the transaction rolled back, so a retry never writes twice. */
  private async writeWithRetry(
    records: SyncRecord[],
    columns: Map<string, ColumnInfo>,
  ): Promise<Outcome[]> {
    const groups = groupByFields(records, columns);
    const bulk = await this.tryBulk(groups, columns);
    if (bulk) return bulk;
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.connection.knex().transaction(async (trx) => {
          const outcomes: Outcome[] = [];
          for (const group of groups)
            outcomes.push(...(await this.writeGroup(trx, group.fields, group.records, columns)));
          return outcomes;
        });
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS || !this.connection.dialect.isTransient(err)) throw err;
        await sleep(backoffMs(attempt));
      }
    }
  }

  /**
   * Large upserts go through the dialect's bulk path (MySQL: LOAD DATA into a staging
   * table, then one INSERT ... SELECT). Any failure that is not the connection's
   * falls back to statements, which find the bad rows.
   */
  private async tryBulk(
    groups: Array<{ fields: string[]; records: SyncRecord[] }>,
    columns: Map<string, ColumnInfo>,
  ): Promise<Outcome[] | null> {
    const { dialect } = this.connection;
    if (!dialect.bulkUpsert || this.options.mode !== "upsert" || groups.length !== 1) return null;
    const [group] = groups;
    if (group.records.length < BULK_MIN_ROWS) return null;
    const chunk: BulkChunk = {
      table: this.options.table,
      columns: group.fields.map((f) => columns.get(f)!),
      key: this.options.keyColumns,
      records: group.records,
    };
    try {
      const actions = await dialect.bulkUpsert(this.connection.knex(), chunk);
      return group.records.map((r, i) => ({
        key: keyOf(r, this.options.keyColumns),
        action: actions[i],
      }));
    } catch (err) {
      // A deadlock or dropped connection is retried on the statement path (an upsert
      // written twice is the same row); a refused login or a missing database is not.
      if (dialect.classifyError(err) && !dialect.isTransient(err)) throw err;
      return null;
    }
  }

  /** Removes the rows of soft-deleted records, by key, in one transaction. */
  private async deleteRows(records: SyncRecord[], dryRun: boolean): Promise<Outcome[]> {
    if (records.length === 0) return [];
    const { keyColumns, table } = this.options;
    const outcomes = records.map((r): Outcome => ({ key: keyOf(r, keyColumns), action: "delete" }));
    if (dryRun) return outcomes;
    const { dialect } = this.connection;
    const perStatement = Math.min(
      Math.floor(dialect.maxParameters / keyColumns.length),
      dialect.maxRows ?? Infinity,
    );
    try {
      await this.connection.knex().transaction(async (trx) => {
        for (let start = 0; start < records.length; start += perStatement) {
          const slice = records.slice(start, start + perStatement);
          await trx(table)
            .where((qb) => {
              for (const r of slice)
                qb.orWhere((inner) => keyColumns.forEach((k) => inner.where(k, r[k] as never)));
            })
            .delete();
        }
      });
    } catch (err) {
      throw this.connection.explain(err, `deleting from table "${table}"`);
    }
    return outcomes;
  }

  /** Dry run: what each record would do, from one lookup of the existing keys. */
  private async wouldWrite(records: SyncRecord[]): Promise<Outcome[]> {
    const { keyColumns, table } = this.options;
    const { dialect } = this.connection;
    const perQuery = Math.min(
      Math.floor(dialect.maxParameters / keyColumns.length),
      dialect.maxRows ?? Infinity,
    );
    const outcomes: Outcome[] = [];
    for (let start = 0; start < records.length; start += perQuery) {
      const slice = records.slice(start, start + perQuery);
      const rows = slice.map((r) => keyColumns.map((k) => r[k]));
      let existing: Set<string>;
      try {
        existing = await existingKeys(
          this.connection.knex(),
          { table, columns: keyColumns, key: keyColumns, rows },
          dialect.rowValues,
        );
      } catch (err) {
        throw this.connection.explain(err, `reading table "${table}"`);
      }
      for (const [i, r] of slice.entries()) {
        const exists = existing.has(keyText(rows[i]));
        const action: OutcomeAction =
          this.options.mode === "insert"
            ? exists
              ? "failed"
              : "insert"
            : exists
              ? "update"
              : this.options.mode === "update"
                ? "skipped"
                : "insert";
        outcomes.push({ key: keyOf(r, keyColumns), action });
      }
    }
    return outcomes;
  }

  private async writeGroup(
    trx: Knex.Transaction,
    fields: string[],
    records: SyncRecord[],
    columns: Map<string, ColumnInfo>,
  ): Promise<Outcome[]> {
    const { dialect } = this.connection;
    const infos = fields.map((f) => columns.get(f)!);
    const perStatement = Math.max(
      1,
      Math.min(Math.floor(dialect.maxParameters / fields.length), dialect.maxRows ?? Infinity),
    );
    const outcomes: Outcome[] = [];
    for (let start = 0; start < records.length; start += perStatement) {
      const slice = records.slice(start, start + perStatement);
      const chunk: WriteChunk = {
        table: this.options.table,
        columns: fields,
        key: this.options.keyColumns,
        rows: slice.map((r) => infos.map((info) => dialect.toDbValue(info, r[info.name] as Value))),
      };
      const actions = await this.writeChunk(trx, chunk, slice);
      slice.forEach((r, i) =>
        outcomes.push({ key: keyOf(r, this.options.keyColumns), action: actions[i] }),
      );
    }
    return outcomes;
  }

  private async writeChunk(
    trx: Knex.Transaction,
    chunk: WriteChunk,
    records: SyncRecord[],
  ): Promise<OutcomeAction[]> {
    switch (this.options.mode) {
      case "upsert":
        return this.connection.dialect.upsertChunk(trx, chunk);
      case "insert": {
        await trx(chunk.table).insert(
          chunk.rows.map((row) => Object.fromEntries(chunk.columns.map((c, i) => [c, row[i]]))),
        );
        return records.map(() => "insert");
      }
      case "update": {
        const actions: OutcomeAction[] = [];
        const keyIdx = chunk.key.map((k) => chunk.columns.indexOf(k));
        for (const row of chunk.rows) {
          const set = Object.fromEntries(
            chunk.columns
              .map((c, i) => [c, row[i]])
              .filter(([c]) => !chunk.key.includes(c as string)),
          );
          const where = Object.fromEntries(chunk.key.map((k, i) => [k, row[keyIdx[i]]]));
          const changed = Object.keys(set).length
            ? await trx(chunk.table).where(where).update(set)
            : await trx(chunk.table)
                .where(where)
                .count({ n: "*" })
                .then((r) => Number((r[0] as { n: unknown }).n));
          actions.push(Number(changed) > 0 ? "update" : "skipped");
        }
        return actions;
      }
      default:
        throw new TributaryError(
          "config",
          `mode "${String(this.options.mode)}" is not supported: choose insert, update or upsert`,
        );
    }
  }
}

function keyOf(record: SyncRecord, keyColumns: string[]): Value[] {
  return keyColumns.map((k) => record[k] ?? null);
}

function allDefined(record: SyncRecord, fields: string[]): boolean {
  for (let i = 0; i < fields.length; i += 1) if (record[fields[i]] === undefined) return false;
  return true;
}

/** No field of the record is undefined. for-in reads the values through V8's enum
 *  cache, several times cheaper than a lookup by name per field. */
function noUndefined(record: SyncRecord): boolean {
  for (const field in record) if (record[field] === undefined) return false;
  return true;
}

/** Records with the same fields share statements; a missing field is never written as NULL. */
function groupByFields(
  records: SyncRecord[],
  columns: Map<string, ColumnInfo>,
): Array<{ fields: string[]; records: SyncRecord[] }> {
  const groups = new Map<string, { fields: string[]; records: SyncRecord[] }>();
  const groupOf = (fields: string[]) => {
    const signature = fields.join("\u0001");
    let group = groups.get(signature);
    if (!group) groups.set(signature, (group = { fields, records: [] }));
    return group;
  };
  // A batch's records nearly always share one shape: the group of the last shape
  // seen is reused without building a signature per record.
  let lastKeys: string[] = [];
  let lastColumnKeys: string[] = [];
  let complete = groupOf([]);
  for (const record of records) {
    if (!hasFieldNames(record, lastKeys)) {
      lastKeys = Object.keys(record);
      lastColumnKeys = lastKeys.filter((f) => columns.has(f));
      complete = groupOf(lastColumnKeys);
    }
    // lastColumnKeys are fields of this record (same names as the shape they came from).
    if (noUndefined(record) || allDefined(record, lastColumnKeys)) complete.records.push(record);
    else groupOf(lastColumnKeys.filter((f) => record[f] !== undefined)).records.push(record);
  }
  return [...groups.values()].filter((g) => g.records.length > 0);
}
