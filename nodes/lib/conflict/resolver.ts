/**
 * Decides, record by record, what a sync should do when it meets the target's
 * current state and the state both sides had when the sync last wrote them:
 * - equal to the target already, or unchanged since the last sync (an echo of a
 *   write this sync made, seen from the other side): drop;
 * - changed on the incoming side only: write;
 * - changed on both sides: a conflict, settled by the strategy.
 */
import type { SyncState } from "../state-store";
import { hasFieldNames, type OutcomeAction, type SyncRecord } from "../types";
import { keyString, recordHash } from "./record-hash";

export const STRATEGIES = ["source-wins", "target-wins", "newest-wins", "skip", "manual"] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface ResolverOptions {
  strategy: Strategy;
  keyFields: string[];
  /** Fields of the target (records are compared on the fields both sides have). */
  targetFields: Set<string>;
  /** newest-wins: the timestamp field on the incoming side and on the target. */
  sourceTimestamp?: string;
  targetTimestamp?: string;
  /** Which stored hash belongs to the incoming side (scopes are shared by both directions). */
  incomingIsFirst: boolean;
  /** keyString of each record, in order, when the caller has them already. */
  keys?: string[];
}

export type Decision =
  | {
      kind: "write";
      record: SyncRecord;
      reason: "new" | "changed" | "conflict-source-wins" | "conflict-newest";
      state: PendingState;
    }
  | {
      kind: "drop";
      record: SyncRecord;
      action: OutcomeAction;
      reason: string;
      state: PendingState | null;
    }
  | { kind: "review"; record: SyncRecord; target: SyncRecord; reason: string };

/** The hashes to store once the write settled. */
export interface PendingState {
  key: string;
  incomingHash: string;
  targetHash: string;
}

export function decide(
  records: SyncRecord[],
  targets: Map<string, SyncRecord>,
  states: Map<string, SyncState>,
  options: ResolverOptions,
): Decision[] {
  let shape: string[] = [];
  let fields: string[] = [];
  return records.map((record, i) => {
    const key = options.keys?.[i] ?? keyString(record, options.keyFields);
    if (!hasFieldNames(record, shape)) {
      shape = Object.keys(record);
      fields = shape.filter((f) => options.targetFields.has(f));
    }
    const incomingHash = recordHash(record, fields);
    const target = targets.get(key);
    if (!target)
      return {
        kind: "write",
        record,
        reason: "new",
        state: { key, incomingHash, targetHash: incomingHash },
      };
    const targetHash = recordHash(target, fields);
    const written: PendingState = { key, incomingHash, targetHash: incomingHash };
    if (incomingHash === targetHash) {
      return {
        kind: "drop",
        record,
        action: "unchanged",
        reason: "equal to the target",
        state: written,
      };
    }
    const state = states.get(key);
    const lastIncoming = state
      ? options.incomingIsFirst
        ? state.sourceHash
        : state.targetHash
      : null;
    const lastTarget = state
      ? options.incomingIsFirst
        ? state.targetHash
        : state.sourceHash
      : null;
    if (state && incomingHash === lastIncoming) {
      return {
        kind: "drop",
        record,
        action: "unchanged",
        reason: "unchanged since the last sync (echo)",
        state: null,
      };
    }
    if (state && targetHash === lastTarget)
      return { kind: "write", record, reason: "changed", state: written };
    return resolveConflict(record, target, written, options);
  });
}

function resolveConflict(
  record: SyncRecord,
  target: SyncRecord,
  written: PendingState,
  options: ResolverOptions,
): Decision {
  switch (options.strategy) {
    case "source-wins":
      return { kind: "write", record, reason: "conflict-source-wins", state: written };
    case "target-wins":
      return {
        kind: "drop",
        record,
        action: "skipped",
        reason: "conflict: the target wins",
        state: null,
      };
    case "skip":
      return { kind: "drop", record, action: "skipped", reason: "conflict: skipped", state: null };
    case "manual":
      return {
        kind: "review",
        record,
        target,
        reason: "changed on both sides since the last sync",
      };
    case "newest-wins": {
      const incoming = record[options.sourceTimestamp ?? ""];
      const current = target[options.targetTimestamp ?? options.sourceTimestamp ?? ""];
      if (newer(incoming, current))
        return { kind: "write", record, reason: "conflict-newest", state: written };
      return {
        kind: "drop",
        record,
        action: "skipped",
        reason: "conflict: the target is newer",
        state: null,
      };
    }
  }
}

/** Whether timestamp `a` is later than `b`; microseconds compared as text, not Dates. */
export function newer(a: unknown, b: unknown): boolean {
  if (a === null || a === undefined) return false;
  if (b === null || b === undefined) return true;
  const [aSecond, aFraction] = splitInstant(a);
  const [bSecond, bFraction] = splitInstant(b);
  if (Number.isNaN(aSecond) || Number.isNaN(bSecond)) return String(a) > String(b);
  if (aSecond !== bSecond) return aSecond > bSecond;
  return aFraction > bFraction;
}

function splitInstant(value: unknown): [number, string] {
  const text = String(value);
  const match = /^(.*?\d{2}:\d{2}:\d{2})(?:\.(\d+))?(.*)$/.exec(text);
  if (!match) return [Date.parse(text), ""];
  const seconds = Date.parse(`${match[1]}${match[3] || "Z"}`.replace(" ", "T"));
  return [seconds, (match[2] ?? "").padEnd(9, "0")];
}
