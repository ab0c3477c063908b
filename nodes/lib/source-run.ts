/**
 * One run of a source (DESIGN.md §3-4): read batches after the last settled position,
 * keep at most N in flight, let the watermark follow settled batches in order, end
 * with a summary. Independent of Node-RED and of where records come from.
 */
import { runRegistry, type Run } from "./run-registry";
import type { StateStore, WatermarkPosition } from "./state-store";
import {
  emptyCounts,
  type BatchMessage,
  type RunSummary,
  type SyncMode,
  type SyncRecord,
} from "./types";

/** What a source must provide: Singer/Airbyte's "read" with explicit state. */
export interface StreamReader {
  readonly entity: string;
  readonly keyFields: string[];
  readonly cursorField: string | null;
  /** Soft-delete field, passed on in msg.sync.deletedField. */
  readonly deletedField?: string | null;
  /** Identity of the data set read, without credentials (see SyncMeta.origin). */
  readonly origin?: string;
  /** Prepares a run (checks the table, columns, connection); throws a clear error.
   *  Returns warnings for the run summary (e.g. rows a policy leaves out). */
  open(mode: SyncMode): Promise<string[]>;
  /** Where an incremental run starts reading, given the stored watermark; a reader
   *  with a look-back window starts earlier, so rows that committed late are read. */
  startAfter(watermark: WatermarkPosition | null): WatermarkPosition | null;
  /** Up to `limit` records strictly after `after` in (cursor, key) order. */
  readBatch(after: WatermarkPosition | null, limit: number): Promise<SyncRecord[]>;
  positionOf(record: SyncRecord): WatermarkPosition;
}

export interface SourceRunOptions {
  sourceId: string;
  flowId?: string;
  mode: SyncMode;
  batchSize: number;
  maxInFlight: number;
  settleTimeoutMs: number;
  dryRun?: boolean;
  reader: StreamReader;
  store: StateStore;
  emit(msg: BatchMessage): void;
  onProgress?(run: Run<WatermarkPosition>): void;
  /** Called once the run is registered; lets the caller abort it. */
  onStart?(run: Run<WatermarkPosition>): void;
}

export async function runSource(options: SourceRunOptions): Promise<RunSummary> {
  const { reader, store, mode } = options;
  const started = runRegistry.start<WatermarkPosition>({
    sourceId: options.sourceId,
    flowId: options.flowId,
    entity: reader.entity,
    mode,
    maxInFlight: options.maxInFlight,
    settleTimeoutMs: options.settleTimeoutMs,
  });
  if ("refused" in started) return skippedSummary(options, started.refused);

  const run = started;
  options.onStart?.(run);
  const saving = trackWatermark(run, options);
  run.onProgress = () => options.onProgress?.(run);
  try {
    await store.saveRun(toSummary(run, options, null));
    await readAll(run, options);
    await run.waitAllSettled();
  } catch (err) {
    run.fail(err as Error);
  }
  // Batches already out may still settle; give them their time so the watermark
  // covers them, but never wait past the settle timeout.
  await run.waitDrained(run.error ? options.settleTimeoutMs : 0);
  try {
    await saving.flush();
  } catch (err) {
    run.fail(new Error(`could not save the watermark: ${(err as Error).message}`));
  }
  if (!run.error && run.counts.failed > 0) {
    run.fail(
      new Error(
        `${run.counts.failed} record(s) failed (invalid or rejected by the target); see output 2 of the transform or sink`,
      ),
    );
  }
  runRegistry.finish(run);
  const summary = toSummary(run, options, new Date().toISOString());
  await store.saveRun(summary).catch(() => undefined);
  runRegistry.emit("finished", summary);
  return summary;
}

async function readAll(run: Run<WatermarkPosition>, options: SourceRunOptions): Promise<void> {
  const { reader, store, mode, batchSize } = options;
  run.warnings.push(...(await reader.open(mode)));
  let after: WatermarkPosition | null = null;
  if (mode === "incremental") {
    after = reader.startAfter((await store.getWatermark(options.sourceId))?.position ?? null);
  }
  let next = reader.readBatch(after, batchSize);
  for (let batch = 1; ; batch += 1) {
    const records = await next;
    if (run.error) throw run.error;
    if (records.length === 0) return;
    const to = reader.positionOf(records[records.length - 1]);
    await run.waitForCapacity();
    if (run.error) throw run.error;
    // Read the following batch while the sink writes this one: reading overlaps writing,
    // one batch is held beyond the maxInFlight that are out.
    next = records.length < batchSize ? Promise.resolve([]) : reader.readBatch(to, batchSize);
    next.catch(() => undefined); // a failure surfaces when it is awaited
    run.emitted(batch, to, records.length);
    options.emit({
      payload: records,
      sync: {
        runId: run.id,
        sourceId: options.sourceId,
        entity: reader.entity,
        mode,
        batch,
        key: reader.keyFields,
        ...(reader.cursorField
          ? { cursor: { field: reader.cursorField, from: after?.cursor ?? null, to: to.cursor } }
          : {}),
        ...(options.dryRun ? { dryRun: true } : {}),
        ...(reader.deletedField ? { deletedField: reader.deletedField } : {}),
        ...(reader.origin ? { origin: reader.origin } : {}),
      },
    });
    options.onProgress?.(run);
    after = to;
    if (records.length < batchSize) return;
  }
}

/** Saves the watermark after each contiguous settled range, one write at a time. */
function trackWatermark(run: Run<WatermarkPosition>, options: SourceRunOptions) {
  let chain: Promise<void> = Promise.resolve();
  let failure: Error | null = null;
  if (options.mode === "incremental" && !options.dryRun) {
    run.onAdvance = (position) => {
      // cursorField is known once the reader opened, before any batch could settle.
      if (!options.reader.cursorField) return;
      chain = chain
        .then(() =>
          options.store
            .saveWatermark({
              sourceId: options.sourceId,
              entity: options.reader.entity,
              cursorField: options.reader.cursorField!,
              position,
              runId: run.id,
            })
            .then(() => {
              runRegistry.emit("watermark", {
                sourceId: options.sourceId,
                entity: options.reader.entity,
                position,
              });
            }),
        )
        .catch((err: Error) => {
          failure = err;
          run.fail(new Error(`could not save the watermark: ${err.message}`));
        });
    };
  }
  return {
    async flush() {
      await chain;
      if (failure) throw failure;
    },
  };
}

function toSummary(
  run: Run<WatermarkPosition>,
  options: SourceRunOptions,
  finishedAt: string | null,
): RunSummary & { flowId: string | null } {
  return {
    runId: run.id,
    sourceId: options.sourceId,
    flowId: options.flowId ?? null,
    entity: options.reader.entity,
    mode: options.mode,
    status: finishedAt === null ? "running" : run.error ? "failed" : "succeeded",
    counts: { ...run.counts },
    startedAt: run.startedAt,
    finishedAt,
    ...(run.error ? { error: run.error.message } : {}),
    ...(run.warnings.length ? { warnings: [...run.warnings] } : {}),
  };
}

function skippedSummary(options: SourceRunOptions, reason: string): RunSummary {
  const now = new Date().toISOString();
  return {
    runId: "",
    sourceId: options.sourceId,
    entity: options.reader.entity,
    mode: options.mode,
    status: "skipped",
    counts: emptyCounts(),
    startedAt: now,
    finishedAt: now,
    error: `skipped: ${reason}`,
  };
}
