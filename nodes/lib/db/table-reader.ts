/**
 * Keyset reads of one table (DESIGN.md §4): `(cursor, key) > (after)` ordered by
 * (cursor, key), never OFFSET, so ties on the cursor value across batch boundaries
 * are each read once. Full mode pages over the key alone.
 */
import type { Knex } from "knex";
import type { StreamReader } from "../source-run";
import type { WatermarkPosition } from "../state-store";
import type { SyncMode, SyncRecord, Value } from "../types";
import type { ColumnInfo, RowLayout } from "./dialect";
import { requireColumns, type DbConnection } from "./connection";
import { TributaryError } from "./errors";
import { isoMinusSeconds } from "./values";
import { bindNamedParams, compileNamedParams, type CompiledQuery } from "./named-params";

export interface TableReaderOptions {
  table: string;
  keyColumns: string[];
  cursorColumn: string | null;
  /** Seconds (or units of a numeric cursor) to re-read before the watermark. */
  lookback?: number;
  /** Custom SQL with named parameters, read as a subquery instead of `table`. */
  query?: string;
  /** Values for the query's named parameters (msg.params). */
  params?: Record<string, unknown>;
  /** Soft-delete column (deleted flag or deleted_at), passed downstream. */
  deletedColumn?: string;
}

const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/;

const TIMESTAMP_TYPES = /timestamp|datetime|date|time/;

export class TableReader implements StreamReader {
  readonly entity: string;
  readonly keyFields: string[];
  cursorField: string | null = null;
  readonly deletedField: string | null;
  private mode: SyncMode = "full";
  private columns = new Map<string, ColumnInfo>();
  /** Exclusive upper bound of the cursor for this run, when the server tells one. */
  private upperBound: string | null = null;
  /** What the dialect's fast read learned about this run's columns. */
  private layout: RowLayout | null = null;

  constructor(
    private readonly connection: DbConnection,
    private readonly options: TableReaderOptions,
  ) {
    this.entity = options.table || "query";
    this.keyFields = options.keyColumns;
    this.deletedField = options.deletedColumn || null;
  }

  get origin(): string {
    return `${this.connection.label}/${this.options.query ? `query:${this.options.query}` : this.options.table}`;
  }

  private compiled: CompiledQuery | null = null;
  /** Values of the query's named parameters; the run sets the watermark and batch size. */
  private paramValues: Record<string, unknown> = {};

  /** The rows to read: the table, or the analyst's query as a subquery. */
  private rows(): Knex.QueryBuilder {
    const knex = this.connection.knex();
    if (!this.compiled) return knex(this.options.table);
    const bindings = bindNamedParams(this.compiled, this.paramValues);
    // A newline before the closing parenthesis ends any trailing `--` comment.
    const sql = this.compiled.sql.replace(/;\s*$/, "");
    return knex.queryBuilder().from(knex.raw(`(${sql}\n) tributary_q`, bindings as never[]));
  }

  private async openQuery(): Promise<void> {
    this.compiled = compileNamedParams(this.options.query!);
    this.paramValues = { ...(this.options.params ?? {}), last_sync_timestamp: null, batch_size: 0 };
    bindNamedParams(this.compiled, this.paramValues); // a missing or mistyped value fails now
    this.columns = new Map();
    const wanted = [...this.keyFields, ...(this.cursorField ? [this.cursorField] : [])];
    try {
      // Runs the query once with no rows, so a wrong column name fails now, clearly.
      await this.rows().select(wanted).whereRaw("1 = 0");
    } catch (err) {
      throw this.connection.explain(err, "running the custom query");
    }
  }

  async open(mode: SyncMode): Promise<string[]> {
    this.mode = mode;
    if (mode === "incremental" && !this.options.cursorColumn) {
      throw new TributaryError(
        "config",
        "incremental mode needs a cursor column: set one (e.g. updated_at) or use full mode",
      );
    }
    this.cursorField = mode === "incremental" ? this.options.cursorColumn : null;
    this.upperBound = null;
    this.layout = null;
    if (this.options.query) {
      await this.openQuery();
      return [];
    }
    this.connection.forget(this.options.table);
    const info = await this.connection.describe(this.options.table);
    requireColumns(info, this.keyFields, "key column", this.connection.label);
    if (this.cursorField)
      requireColumns(info, [this.cursorField], "cursor column", this.connection.label);
    if (this.deletedField)
      requireColumns(info, [this.deletedField], "deleted column", this.connection.label);
    this.columns = new Map(info.columns.map((c) => [c.name, c]));
    this.upperBound = null;
    if (!this.cursorField) return [];
    const warnings: string[] = [];
    try {
      const cursorType = this.columns.get(this.cursorField)!.type;
      const { dialect } = this.connection;
      if (
        dialect.oldestOpenTransaction &&
        /timestamp/.test(cursorType) &&
        !/without time zone/.test(cursorType)
      ) {
        this.upperBound = await dialect.oldestOpenTransaction(this.connection.knex());
      }
      const nulls = await this.connection
        .knex()(this.options.table)
        .whereNull(this.cursorField)
        .count({ n: "*" });
      const n = Number((nulls[0] as { n: unknown }).n);
      if (n > 0) {
        warnings.push(
          `${n} row(s) have no ${this.cursorField} value and are not read in incremental mode: run a full sync to copy them`,
        );
      }
    } catch (err) {
      throw this.connection.explain(err, `reading table "${this.options.table}"`);
    }
    return warnings;
  }

  startAfter(watermark: WatermarkPosition | null): WatermarkPosition | null {
    // :last_sync_timestamp is the watermark this run starts from.
    this.paramValues.last_sync_timestamp = watermark ? this.bindCursor(watermark.cursor) : null;
    const lookback = this.options.lookback ?? 0;
    if (!watermark || lookback <= 0 || watermark.cursor === null) return watermark;
    const cursor = watermark.cursor;
    if (typeof cursor === "number") return { cursor: cursor - lookback, key: [] };
    if (typeof cursor === "string" && /^-?\d+$/.test(cursor))
      return { cursor: String(BigInt(cursor) - BigInt(Math.round(lookback))), key: [] };
    const type = this.columns.get(this.cursorField ?? "")?.type ?? "";
    const earlier =
      typeof cursor === "string" && TIMESTAMP_TYPES.test(type)
        ? isoMinusSeconds(cursor, lookback)
        : null;
    return earlier === null ? watermark : { cursor: earlier, key: [] };
  }

  async readBatch(after: WatermarkPosition | null, limit: number): Promise<SyncRecord[]> {
    const fields = this.orderFields();
    this.paramValues.batch_size = limit;
    const query = this.rows().select(this.connection.selectList([...this.columns.values()]));
    if (this.cursorField) query.whereNotNull(this.cursorField);
    if (this.cursorField && this.upperBound !== null) {
      query.where(this.cursorField, "<", this.bindCursor(this.upperBound) as never);
    }
    if (after && this.cursorField && after.key.length === 0) {
      // A look-back start: every row from that cursor value on, ties included.
      query.where(this.cursorField, ">=", this.bindCursor(after.cursor) as never);
    } else if (after) {
      this.whereAfter(query, fields, this.boundValues(fields, after));
    }
    // Qualified, so SQL Server orders by the column and not by the same-named text
    // alias selectExpression makes of a datetime2 (text order is not time order).
    const from = this.compiled ? "tributary_q" : this.options.table;
    for (const field of fields) query.orderBy(`${from}.${field}`, "asc");
    query.limit(limit);
    try {
      return this.connection.lossless([...this.columns.values()], await this.select(query));
    } catch (err) {
      throw this.connection.explain(
        err,
        this.compiled ? "running the custom query" : `reading table "${this.options.table}"`,
      );
    }
  }

  /** The rows of a batch's select: by the dialect's fast path for a table. An analyst's
   *  query goes the usual way: its text may hold quoting or comments that the fast
   *  path's rewrite of placeholders does not read. */
  private async select(query: Knex.QueryBuilder): Promise<SyncRecord[]> {
    const { dialect } = this.connection;
    if (!dialect.readRows || this.compiled) return (await query) as SyncRecord[];
    const read = await dialect.readRows(this.connection.knex(), query, this.layout);
    this.layout = read.layout;
    return read.rows;
  }

  positionOf(record: SyncRecord): WatermarkPosition {
    return {
      cursor: this.cursorField ? (record[this.cursorField] ?? null) : null,
      key: this.keyFields.map((k) => record[k] ?? null),
    };
  }

  private bindCursor(value: Value): unknown {
    return this.bind(this.cursorField ?? "", value);
  }

  /** A value as the driver binds it for `field`; custom queries have no column types,
   *  so a timestamp is recognised by its form. */
  private bind(field: string, value: Value): unknown {
    const column =
      this.columns.get(field) ??
      (typeof value === "string" && ISO_TIMESTAMP.test(value)
        ? { name: field, type: "timestamp", nullable: true }
        : null);
    return column ? this.connection.dialect.toDbValue(column, value) : value;
  }

  private orderFields(): string[] {
    return this.cursorField && this.mode === "incremental"
      ? [this.cursorField, ...this.keyFields]
      : this.keyFields;
  }

  private boundValues(fields: string[], after: WatermarkPosition): unknown[] {
    const values: Value[] = this.cursorField ? [after.cursor, ...after.key] : after.key;
    return fields.map((field, i) => this.bind(field, values[i]));
  }

  private whereAfter(query: Knex.QueryBuilder, fields: string[], values: unknown[]): void {
    if (this.connection.dialect.rowValues) {
      const ids = fields.map(() => "??").join(", ");
      const marks = fields.map(() => "?").join(", ");
      query.whereRaw(`(${ids}) > (${marks})`, [...fields, ...values] as never[]);
      return;
    }
    // (a, b, c) > (x, y, z)  ==  a > x or (a = x and (b > y or (b = y and c > z)))
    query.where((outer) => {
      fields.forEach((field, i) => {
        outer.orWhere((qb) => {
          for (let j = 0; j < i; j += 1) qb.where(fields[j], values[j] as never);
          qb.where(field, ">", values[i] as never);
        });
      });
    });
  }
}
