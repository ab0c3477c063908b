/**
 * Keyset reads of one table (DESIGN.md §4): `(cursor, key) > (after)` ordered by
 * (cursor, key), never OFFSET, so ties on the cursor value across batch boundaries
 * are each read once. Full mode pages over the key alone.
 */
import type { Knex } from "knex";
import type { StreamReader } from "../source-run";
import type { WatermarkPosition } from "../state-store";
import type { SyncMode, SyncRecord, Value } from "../types";
import type { ColumnInfo } from "./dialect";
import { requireColumns, type DbConnection } from "./connection";
import { TributaryError } from "./errors";

export interface TableReaderOptions {
  table: string;
  keyColumns: string[];
  cursorColumn: string | null;
}

export class TableReader implements StreamReader {
  readonly entity: string;
  readonly keyFields: string[];
  cursorField: string | null = null;
  private mode: SyncMode = "full";
  private columns = new Map<string, ColumnInfo>();

  constructor(
    private readonly connection: DbConnection,
    private readonly options: TableReaderOptions,
  ) {
    this.entity = options.table;
    this.keyFields = options.keyColumns;
  }

  async open(mode: SyncMode): Promise<void> {
    this.mode = mode;
    if (mode === "incremental" && !this.options.cursorColumn) {
      throw new TributaryError("config", "incremental mode needs a cursor column: set one (e.g. updated_at) or use full mode");
    }
    this.cursorField = mode === "incremental" ? this.options.cursorColumn : null;
    this.connection.forget(this.options.table);
    const info = await this.connection.describe(this.options.table);
    requireColumns(info, this.keyFields, "key column", this.connection.label);
    if (this.cursorField) requireColumns(info, [this.cursorField], "cursor column", this.connection.label);
    this.columns = new Map(info.columns.map((c) => [c.name, c]));
  }

  async readBatch(after: WatermarkPosition | null, limit: number): Promise<SyncRecord[]> {
    const fields = this.orderFields();
    const query = this.connection.knex()(this.options.table).select("*");
    if (this.cursorField) query.whereNotNull(this.cursorField);
    if (after) this.whereAfter(query, fields, this.boundValues(fields, after));
    for (const field of fields) query.orderBy(field, "asc");
    query.limit(limit);
    try {
      return (await query) as SyncRecord[];
    } catch (err) {
      throw this.connection.explain(err, `reading table "${this.options.table}"`);
    }
  }

  positionOf(record: SyncRecord): WatermarkPosition {
    return {
      cursor: this.cursorField ? (record[this.cursorField] ?? null) : null,
      key: this.keyFields.map((k) => record[k] ?? null),
    };
  }

  private orderFields(): string[] {
    return this.cursorField && this.mode === "incremental" ? [this.cursorField, ...this.keyFields] : this.keyFields;
  }

  private boundValues(fields: string[], after: WatermarkPosition): unknown[] {
    const values: Value[] = this.cursorField ? [after.cursor, ...after.key] : after.key;
    return fields.map((field, i) => {
      const column = this.columns.get(field);
      return column ? this.connection.dialect.toDbValue(column, values[i]) : values[i];
    });
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
