/**
 * Process-wide directory of deployed source nodes, so the headless CLI, the
 * management API and shutdown can reach them without going through an inject node.
 */
import type { RunSummary, SyncMode } from "./types";

export interface TriggerOptions {
  mode?: SyncMode;
  dryRun?: boolean;
  /** Values for a custom query's named parameters (msg.params). */
  params?: Record<string, unknown>;
}

export interface SourceHandle {
  id: string;
  type: string;
  name: string;
  flowId?: string;
  /** Starts a run and resolves with its summary once every batch settled or the run failed.
   *  Resolves with status "skipped" when a run of this source is already under way. */
  trigger(options?: TriggerOptions): Promise<RunSummary>;
  /** Starts a run and resolves as soon as it is registered (for the management API):
   *  `runId` is "" when the run did not start (see the summary's status and error). */
  start(options?: TriggerOptions): Promise<{ runId: string; finished: Promise<RunSummary> }>;
  isRunning(): boolean;
}

// Shared through globalThis so two copies of this module still see one directory.
const globalKey = Symbol.for("node-red-contrib-tributary.sources");
const holder = globalThis as unknown as Record<symbol, Map<string, SourceHandle> | undefined>;
const handles: Map<string, SourceHandle> = holder[globalKey] ?? (holder[globalKey] = new Map());

export const sources = {
  register(handle: SourceHandle): void {
    handles.set(handle.id, handle);
  },
  unregister(id: string): void {
    handles.delete(id);
  },
  get(id: string): SourceHandle | undefined {
    return handles.get(id);
  },
  list(): SourceHandle[] {
    return [...handles.values()];
  },
};
