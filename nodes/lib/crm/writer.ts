/**
 * Writes batches to a CRM object through a provider's upsert, with the same result
 * as the database TableWriter: per-record outcomes, the failed records with the
 * provider's reason, and the record fields the object has no field for.
 */
import { TributaryError } from "../db/errors";
import type { FailedRecord, WriteMode, WriteResult } from "../db/table-writer";
import type { Outcome, SyncRecord } from "../types";
import type { CrmProvider } from "./provider";

export interface CrmWriterOptions {
  object: string;
  /** The field records are matched by: an id or a unique / external-id field. */
  keyField: string;
  mode: WriteMode;
  /** Write only these fields (plus the key); empty: every field the object has. */
  columns?: string[];
}

/** Object fields are read again after this long, so a field added in the CRM is picked up. */
const DESCRIBE_TTL_MS = 60_000;

export class CrmWriter {
  private fields: { names: Set<string>; at: number } | null = null;

  constructor(
    private readonly provider: CrmProvider,
    private readonly options: CrmWriterOptions,
  ) {
    if (options.mode !== "upsert") {
      throw new TributaryError(
        "config",
        `mode "${options.mode}" is not available for a CRM target: choose upsert (records are matched by ${options.keyField})`,
      );
    }
  }

  /** Checks the object and the key field; throws a clear error. */
  async check(): Promise<Set<string>> {
    if (this.fields && Date.now() - this.fields.at < DESCRIBE_TTL_MS) return this.fields.names;
    const described = await this.provider.describe(this.options.object);
    const names = new Set(described.map((f) => f.name));
    const { keyField, object } = this.options;
    if (!names.has(keyField) && keyField !== this.provider.idField(object)) {
      throw new TributaryError(
        "unknown-field",
        `${this.provider.name} object "${object}" has no field "${keyField}": set the key column to a unique field of the object (e.g. email for contacts) or to ${this.provider.idField(object)}`,
      );
    }
    const missing = (this.options.columns ?? []).filter((c) => !names.has(c));
    if (missing.length) {
      throw new TributaryError(
        "unknown-field",
        `${this.provider.name} object "${object}" has no field ${missing.map((m) => `"${m}"`).join(", ")}: fix the columns list`,
      );
    }
    this.fields = { names, at: Date.now() };
    return names;
  }

  async write(records: SyncRecord[], dryRun = false): Promise<WriteResult> {
    const names = await this.check();
    const { keyField } = this.options;
    const only = this.options.columns?.length ? new Set([...this.options.columns, keyField]) : null;
    const failed: FailedRecord[] = [];
    const outcomes: Outcome[] = [];
    const ignored = new Set<string>();
    const latest = new Map<string, SyncRecord>();
    for (const record of records) {
      const key = record[keyField];
      if (key === undefined || key === null || key === "") {
        const error = `record has no value for key field "${keyField}"`;
        failed.push({ record, error });
        outcomes.push({ key: [key ?? null], action: "failed", error });
        continue;
      }
      // The last version of a key in a batch wins; CRMs reject a batch naming a key twice.
      latest.set(String(key), record);
    }
    const idField = this.provider.idField(this.options.object);
    const prepared = [...latest.values()].map((record) => {
      const out: SyncRecord = {};
      for (const [field, value] of Object.entries(record)) {
        const wanted = only ? only.has(field) : true;
        // The CRM sets its own record id; a source row's "id" is not written to it.
        if (field === keyField || (wanted && names.has(field) && field !== idField))
          out[field] = value;
        else if (wanted) ignored.add(field);
      }
      return { record, out };
    });
    if (dryRun) {
      for (const { record } of prepared)
        outcomes.push({
          key: [record[keyField]],
          action: "skipped",
          error: "dry run: not written",
        });
      return { outcomes, failed, ignoredFields: [...ignored] };
    }
    const results = await this.provider.upsert(
      this.options.object,
      keyField,
      prepared.map((p) => p.out),
    );
    results.forEach((result, i) => {
      outcomes.push({
        key: result.key,
        action: result.action,
        ...(result.error ? { error: result.error } : {}),
      });
      if (result.action === "failed")
        failed.push({ record: prepared[i].record, error: result.error ?? "rejected by the CRM" });
    });
    return { outcomes, failed, ignoredFields: [...ignored] };
  }
}
