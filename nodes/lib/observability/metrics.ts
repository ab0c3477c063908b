/**
 * Prometheus metrics of the pack (DESIGN.md §5), fed by the run registry's events.
 * A registry of its own, so other prom-client users in the same Node-RED are not
 * affected; the hosted runtime serves it at GET /metrics.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { runRegistry, type SettledEvent } from "../run-registry";
import { openConnections } from "../db/connection";
import type { RunSummary, Value } from "../types";

export const metricsRegistry = new Registry();

const rows = new Counter({
  name: "tributary_rows_total",
  help: "Records written or decided by a node, by outcome.",
  labelNames: ["node", "outcome"],
  registers: [metricsRegistry],
});

const runs = new Counter({
  name: "tributary_runs_total",
  help: "Finished runs by source and status.",
  labelNames: ["source", "status"],
  registers: [metricsRegistry],
});

const durations = new Histogram({
  name: "tributary_run_duration_seconds",
  help: "Run durations by source and status.",
  labelNames: ["source", "status"],
  buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
  registers: [metricsRegistry],
});

const watermarks = new Map<string, number>();

new Gauge({
  name: "tributary_source_lag_seconds",
  help: "Now minus the source's watermark, for timestamp cursors.",
  labelNames: ["source"],
  registers: [metricsRegistry],
  collect() {
    this.reset();
    const now = Date.now();
    for (const [source, at] of watermarks) this.set({ source }, Math.max(0, (now - at) / 1000));
  },
});

new Gauge({
  name: "tributary_batches_in_flight",
  help: "Batches emitted and not yet settled, by source.",
  labelNames: ["source"],
  registers: [metricsRegistry],
  collect() {
    this.reset();
    for (const run of runRegistry.active())
      this.set({ source: run.info.sourceId }, run.batchesInFlight);
  },
});

new Gauge({
  name: "tributary_pool_connections",
  help: "Database pool connections by state (used, free, pending acquires) and maximum.",
  labelNames: ["connection", "state"],
  registers: [metricsRegistry],
  collect() {
    this.reset();
    for (const connection of openConnections) {
      const stats = connection.poolStats();
      for (const state of ["used", "free", "pending", "max"] as const) {
        this.inc({ connection: connection.label, state }, stats[state]);
      }
    }
  },
});

let started = false;

function onSettled(event: SettledEvent): void {
  for (const outcome of event.outcomes)
    rows.inc({ node: event.nodeId ?? "unknown", outcome: outcome.action });
}

function onFinished(summary: RunSummary): void {
  runs.inc({ source: summary.sourceId, status: summary.status });
  if (summary.finishedAt) {
    const seconds = (Date.parse(summary.finishedAt) - Date.parse(summary.startedAt)) / 1000;
    durations.observe({ source: summary.sourceId, status: summary.status }, seconds);
  }
}

function onWatermark(event: { sourceId: string; position: { cursor: Value } }): void {
  const cursor = event.position.cursor;
  const at = typeof cursor === "string" ? Date.parse(cursor) : NaN;
  if (!Number.isNaN(at)) watermarks.set(event.sourceId, at);
}

/** Subscribes to the run registry once per process. */
export function startMetrics(): void {
  if (started) return;
  started = true;
  collectDefaultMetrics({ register: metricsRegistry });
  runRegistry.on("settled", onSettled);
  runRegistry.on("failed-batch", onSettled);
  runRegistry.on("finished", onFinished);
  runRegistry.on("watermark", onWatermark);
}
