/**
 * The batch message contract of DESIGN.md §3, shared by every node of the pack.
 */

/** A value that survives a round trip between databases unchanged. */
export type Value = string | number | boolean | null | Buffer | Value[] | { [key: string]: Value };

/** One row or CRM record: plain object, lossless values. */
export type SyncRecord = Record<string, Value>;

export type SyncMode = "full" | "incremental";

export type OutcomeAction =
  "insert" | "update" | "delete" | "unchanged" | "skipped" | "conflict" | "failed";

export interface Outcome {
  key: Value[];
  action: OutcomeAction;
  error?: string;
}

export interface CursorRange {
  field: string;
  from: Value | null;
  to: Value | null;
}

export interface SyncMeta {
  runId: string;
  sourceId: string;
  entity: string;
  mode: SyncMode;
  batch: number;
  key: string[];
  cursor?: CursorRange;
  dryRun?: boolean;
  /** Records whose value in this field is set (not null/false/0) were deleted at the
   *  source (soft delete); sinks delete or mark them per their setting. */
  deletedField?: string;
  /** Where the records come from ("PostgreSQL sales@db:5432/customers"), so a
   *  conflict-resolve can recognise the same pair of tables in both directions. */
  origin?: string;
  outcomes?: Outcome[];
}

export interface BatchMessage {
  _msgid?: string;
  payload: SyncRecord[];
  sync: SyncMeta;
  [key: string]: unknown;
}

export type RunStatus = "running" | "succeeded" | "failed" | "skipped";

export interface RunCounts {
  read: number;
  batches: number;
  insert: number;
  update: number;
  delete: number;
  unchanged: number;
  skipped: number;
  conflict: number;
  failed: number;
}

export interface RunSummary {
  runId: string;
  sourceId: string;
  entity: string;
  mode: SyncMode;
  status: RunStatus;
  counts: RunCounts;
  startedAt: string;
  finishedAt: string | null;
  error?: string;
  /** Things the run did not do that a user should know (e.g. rows with no cursor value). */
  warnings?: string[];
}

export function emptyCounts(): RunCounts {
  return {
    read: 0,
    batches: 0,
    insert: 0,
    update: 0,
    delete: 0,
    unchanged: 0,
    skipped: 0,
    conflict: 0,
    failed: 0,
  };
}

/** Whether a soft-delete field's value marks the record as deleted. */
export function isDeleted(value: Value | undefined): boolean {
  return !(
    value === undefined ||
    value === null ||
    value === false ||
    value === 0 ||
    value === "0" ||
    value === "" ||
    value === "false"
  );
}

/** Whether the record's own fields are `names`, in that order. A batch's records nearly
 *  always share one shape, so per-shape work is done once; this check allocates nothing
 *  (no Object.keys), so it can run for every record. */
export function hasFieldNames(record: object, names: string[]): boolean {
  let i = 0;
  for (const field in record) {
    if (!Object.prototype.hasOwnProperty.call(record, field)) continue;
    if (field !== names[i]) return false;
    i += 1;
  }
  return i === names.length;
}
