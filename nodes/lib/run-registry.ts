/**
 * Tracks every run of the pack's sources in this process (DESIGN.md §4): batches in
 * flight, batches settled by a sink, counts per outcome. A run's watermark may only
 * move over batches that settled, in order, so the registry hands the source each
 * contiguous advance through `onAdvance`.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { emptyCounts, type Outcome, type RunCounts, type SyncMode } from "./types";

export interface RunInfo {
  sourceId: string;
  flowId?: string;
  entity: string;
  mode: SyncMode;
  maxInFlight: number;
  settleTimeoutMs: number;
}

interface BatchState<P> {
  position: P;
  records: number;
  timer: NodeJS.Timeout;
}

export class RunFailedError extends Error {}

export class Run<P = unknown> {
  readonly id = randomUUID();
  readonly startedAt = new Date().toISOString();
  readonly counts: RunCounts = emptyCounts();
  error: Error | null = null;
  readonly warnings: string[] = [];
  /** Called with the position of the last batch of each contiguous settled range. */
  onAdvance: (position: P, batch: number) => void = () => {};
  onProgress: () => void = () => {};

  private readonly inFlight = new Map<number, BatchState<P>>();
  private readonly settledAhead = new Map<number, P>();
  private nextToAdvance = 1;
  private waiters: Array<() => void> = [];

  constructor(readonly info: RunInfo) {}

  get batchesInFlight(): number {
    return this.inFlight.size;
  }

  /** Resolves when another batch may be emitted; throws once the run has failed. */
  async waitForCapacity(): Promise<void> {
    while (!this.error && this.inFlight.size >= this.info.maxInFlight) await this.nextChange();
    if (this.error) throw this.error;
  }

  /** Resolves when every emitted batch settled or the run failed. */
  async waitAllSettled(): Promise<void> {
    while (this.inFlight.size > 0 && !this.error) await this.nextChange();
  }

  /** Resolves once no batch is in flight, failed or not, or after `ms`. */
  async waitDrained(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.inFlight.size > 0 && Date.now() < deadline) {
      await Promise.race([this.nextChange(), delay(Math.max(1, deadline - Date.now()))]);
    }
  }

  emitted(batch: number, position: P, records: number): void {
    const timer = setTimeout(() => this.timedOut(batch), this.info.settleTimeoutMs);
    timer.unref();
    this.inFlight.set(batch, { position, records, timer });
    this.counts.batches = Math.max(this.counts.batches, batch);
    this.counts.read += records;
  }

  settle(batch: number, outcomes: Outcome[] | undefined): void {
    const state = this.inFlight.get(batch);
    if (!state) return; // settled already (fan-out to two sinks) or unknown
    clearTimeout(state.timer);
    this.inFlight.delete(batch);
    for (const outcome of outcomes ?? []) this.counts[outcome.action] += 1;
    if (!this.error) {
      this.settledAhead.set(batch, state.position);
      this.advance();
    }
    this.onProgress();
    this.wake();
  }

  failBatch(batch: number, error: Error, outcomes?: Outcome[]): void {
    const state = this.inFlight.get(batch);
    if (state) {
      clearTimeout(state.timer);
      this.inFlight.delete(batch);
    }
    for (const outcome of outcomes ?? []) this.counts[outcome.action] += 1;
    this.fail(new RunFailedError(`batch ${batch} failed: ${error.message}`));
  }

  fail(error: Error): void {
    if (!this.error) this.error = error;
    this.wake();
  }

  /** Releases timers of batches that will never settle (run ended). */
  dispose(): void {
    for (const state of this.inFlight.values()) clearTimeout(state.timer);
    this.inFlight.clear();
    this.wake();
  }

  private advance(): void {
    let last: { position: P; batch: number } | null = null;
    while (this.settledAhead.has(this.nextToAdvance)) {
      last = { position: this.settledAhead.get(this.nextToAdvance)!, batch: this.nextToAdvance };
      this.settledAhead.delete(this.nextToAdvance);
      this.nextToAdvance += 1;
    }
    if (last) this.onAdvance(last.position, last.batch);
  }

  private timedOut(batch: number): void {
    if (!this.inFlight.has(batch)) return;
    // Lost: a late settle is ignored, and the run must not wait for it again.
    this.inFlight.delete(batch);
    const seconds = Math.round(this.info.settleTimeoutMs / 1000);
    this.fail(
      new RunFailedError(
        `batch ${batch} was not settled within ${seconds} s: check that output 1 of the source is ` +
          `wired (directly or through other nodes) to a tributary-upsert or tributary-audit-log node, ` +
          `that no node on the way drops the message, and that the target is reachable; or raise ` +
          `"settle timeout" for slow targets`,
      ),
    );
  }

  private nextChange(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Events: "settled" (SettledEvent), "failed-batch" (SettledEvent & {error}),
 *  "finished" (RunSummary), "watermark" ({sourceId, entity, position}). */
export interface SettledEvent {
  runId: string;
  sourceId: string;
  batch: number;
  nodeId: string | null;
  outcomes: Outcome[];
}

class RunRegistry extends EventEmitter {
  private readonly runs = new Map<string, Run>();
  private readonly bySource = new Map<string, Run>();
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  skipped = 0;

  /** Starts a run, or returns the reason it may not start now. */
  start<P>(info: RunInfo): Run<P> | { refused: string } {
    if (this.draining) return { refused: "the runtime is shutting down" };
    const running = this.bySource.get(info.sourceId);
    if (running) {
      this.skipped += 1;
      return { refused: `a run of this source is already under way (run ${running.id})` };
    }
    const run = new Run<P>(info);
    this.runs.set(run.id, run as Run);
    this.bySource.set(info.sourceId, run as Run);
    return run;
  }

  finish<P>(run: Run<P>): void {
    run.dispose();
    this.runs.delete(run.id);
    if (this.bySource.get(run.info.sourceId) === (run as Run))
      this.bySource.delete(run.info.sourceId);
    if (this.runs.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  get(runId: string): Run | undefined {
    return this.runs.get(runId);
  }

  runningFor(sourceId: string): Run | undefined {
    return this.bySource.get(sourceId);
  }

  /** Called by sinks when a batch reached them and its writes committed. */
  settle(runId: string, batch: number, outcomes?: Outcome[], nodeId?: string): void {
    const run = this.runs.get(runId);
    if (!run) return;
    run.settle(batch, outcomes);
    this.emit("settled", {
      runId,
      sourceId: run.info.sourceId,
      batch,
      nodeId: nodeId ?? null,
      outcomes: outcomes ?? [],
    });
  }

  /** Called by sinks when a batch could not be written: the run fails. */
  failBatch(
    runId: string,
    batch: number,
    error: Error,
    outcomes?: Outcome[],
    nodeId?: string,
  ): void {
    const run = this.runs.get(runId);
    if (!run) return;
    run.failBatch(batch, error, outcomes);
    this.emit("failed-batch", {
      runId,
      sourceId: run.info.sourceId,
      batch,
      nodeId: nodeId ?? null,
      outcomes: outcomes ?? [],
      error,
    });
  }

  /** Runs under way, for the management API and metrics. */
  active(): Run[] {
    return [...this.runs.values()];
  }

  activeRunCount(): number {
    return this.runs.size;
  }

  beginDrain(): void {
    this.draining = true;
  }

  /** For tests and restarts within one process. */
  endDrain(): void {
    this.draining = false;
  }

  async waitIdle(timeoutMs: number): Promise<number> {
    if (this.runs.size === 0) return 0;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      delay(timeoutMs),
    ]);
    return this.runs.size;
  }
}

// One registry per process even if the pack's modules were loaded twice (e.g. from
// two paths), so sources and sinks always meet.
const globalKey = Symbol.for("node-red-contrib-tributary.run-registry");
const holder = globalThis as unknown as Record<symbol, RunRegistry | undefined>;
export const runRegistry: RunRegistry =
  holder[globalKey] ?? (holder[globalKey] = new RunRegistry());
export type { RunRegistry };
