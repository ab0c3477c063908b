/**
 * A StreamReader over any CrmProvider, so runSource gives a CRM source the same
 * batches, back pressure, watermark and run summaries as the database source
 * (DESIGN.md §3-4). The keyset is (modified, id): the provider's last-modified field
 * is the cursor, its record id the key.
 */
import { TributaryError } from "../db/errors";
import type { StreamReader } from "../source-run";
import type { WatermarkPosition } from "../state-store";
import type { SyncMode, SyncRecord, Value } from "../types";
import type { CrmPosition, CrmProvider } from "./provider";

export interface CrmReaderOptions {
  object: string;
  /** Fields to read; empty: what the provider returns by default. */
  fields: string[];
  /** Seconds re-read before the watermark, for records a provider indexes late. */
  lookback?: number;
  /** Names the connection in `origin` (no credentials). */
  label?: string;
}

export class CrmReader implements StreamReader {
  readonly entity: string;
  readonly keyFields: string[];
  cursorField: string | null = null;
  private mode: SyncMode = "full";

  constructor(
    private readonly provider: CrmProvider,
    private readonly options: CrmReaderOptions,
  ) {
    this.entity = options.object;
    this.keyFields = [provider.idField(options.object)];
  }

  get origin(): string {
    return `${this.options.label ?? this.provider.name}/${this.options.object}`;
  }

  /** Checks that the object and the chosen fields exist, so a typo fails the run at once. */
  async open(mode: SyncMode): Promise<string[]> {
    this.mode = mode;
    this.cursorField =
      mode === "incremental" ? this.provider.modifiedField(this.options.object) : null;
    if (this.options.fields.length === 0) return [];
    const known = new Set((await this.provider.describe(this.options.object)).map((f) => f.name));
    const missing = this.options.fields.filter((f) => !known.has(f) && f !== this.keyFields[0]);
    if (missing.length) {
      throw new TributaryError(
        "unknown-field",
        `${this.provider.name} object "${this.options.object}" has no field ${missing.map((m) => `"${m}"`).join(", ")}: check the fields list (the field picker shows the object's fields)`,
      );
    }
    return [];
  }

  startAfter(watermark: WatermarkPosition | null): WatermarkPosition | null {
    const lookback = this.options.lookback ?? 0;
    if (!watermark || lookback <= 0 || typeof watermark.cursor !== "string") return watermark;
    const ms = Date.parse(watermark.cursor);
    if (Number.isNaN(ms)) return watermark;
    // An empty key reads from that instant on, ties included.
    return { cursor: new Date(ms - lookback * 1000).toISOString(), key: [] };
  }

  async readBatch(after: WatermarkPosition | null, limit: number): Promise<SyncRecord[]> {
    return this.provider.read({
      object: this.options.object,
      fields: this.options.fields,
      mode: this.mode,
      after: after ? toPosition(after, this.mode) : null,
      limit,
    });
  }

  positionOf(record: SyncRecord): WatermarkPosition {
    return {
      cursor: this.cursorField ? (record[this.cursorField] ?? null) : null,
      key: [record[this.keyFields[0]] ?? null],
    };
  }
}

function text(value: Value | undefined): string | null {
  return value === undefined || value === null ? null : String(value);
}

function toPosition(after: WatermarkPosition, mode: SyncMode): CrmPosition {
  return {
    modified: mode === "incremental" ? text(after.cursor) : null,
    id: text(after.key[0]),
  };
}
