/**
 * Ordering of CRM records by (modified, id), the keyset every provider reads in.
 * Ids compare as numbers when both are whole numbers (HubSpot and Pipedrive ids are,
 * and their APIs sort them numerically: "99" < "100"), else as text.
 */
import type { SyncRecord, Value } from "../types";
import type { CrmPosition } from "./provider";

export function compareIds(a: Value | null | undefined, b: Value | null | undefined): number {
  const x = a === null || a === undefined ? "" : String(a);
  const y = b === null || b === undefined ? "" : String(b);
  if (/^\d+$/.test(x) && /^\d+$/.test(y)) {
    const d = BigInt(x) - BigInt(y);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Timestamps compare as instants (the same instant may be written two ways). */
export function compareModified(a: Value | null | undefined, b: Value | null | undefined): number {
  const x = a === null || a === undefined ? "" : String(a);
  const y = b === null || b === undefined ? "" : String(b);
  const tx = Date.parse(x);
  const ty = Date.parse(y);
  if (!Number.isNaN(tx) && !Number.isNaN(ty) && tx !== ty) return tx < ty ? -1 : 1;
  if (!Number.isNaN(tx) && !Number.isNaN(ty)) return 0;
  return x < y ? -1 : x > y ? 1 : 0;
}

export function comparePositions(a: CrmPosition, b: CrmPosition): number {
  return compareModified(a.modified, b.modified) || compareIds(a.id, b.id);
}

export function positionOf(
  record: SyncRecord,
  idField: string,
  modifiedField: string,
): CrmPosition {
  const id = record[idField];
  const modified = record[modifiedField];
  return {
    id: id === undefined || id === null ? null : String(id),
    modified: modified === undefined || modified === null ? null : String(modified),
  };
}

/** Whether `record` comes strictly after `after` in (modified, id) order. */
export function isAfter(position: CrmPosition, after: CrmPosition | null): boolean {
  if (!after) return true;
  if (after.modified === null) return after.id === null || compareIds(position.id, after.id) > 0;
  const m = compareModified(position.modified, after.modified);
  if (m !== 0) return m > 0;
  // An after-position without an id means "from this modified value on, inclusive".
  return after.id === null || compareIds(position.id, after.id) > 0;
}
