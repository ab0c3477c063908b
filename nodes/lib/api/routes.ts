/**
 * The management API (DESIGN.md §5) as Node-RED admin routes under
 * `<httpAdminRoot>/tributary/`, behind adminAuth: `tributary.read` for GET,
 * `tributary.write` for the rest. JSON in and out; errors are
 * `{ error: { code, message } }` with 400, 404 or 409.
 */
import type { Request, Response, Router } from "express";
import type { NodeRedApi } from "../red";
import { runRegistry } from "../run-registry";
import { sources } from "../sources";
import {
  stateStoreFor,
  type ReviewResolution,
  type RunFilter,
  type StateStore,
} from "../state-store";
import type { RunStatus, SyncMode } from "../types";
import type { DbConnectionNode } from "../db/connection";
import { DbConnection, parseSettings } from "../db/connection";
import { TributaryError } from "../db/errors";
import { describeTableDetail, listTables } from "../db/discovery";
import {
  crmFields,
  crmObjects,
  crmTestDeployed,
  crmTestForm,
  isCrmConnection,
  registerCrmRoutes,
} from "./crm-routes";
import { allow as allowFor, ApiError, sendError, testForm as readTestForm } from "./common";

export { ApiError };

const STATUSES: RunStatus[] = ["running", "succeeded", "failed", "skipped"];
const RESOLUTIONS: ReviewResolution[] = ["source", "target", "skip"];
const registered = new WeakSet<object>();

type Handler = (req: Request, store: StateStore) => Promise<{ status?: number; body?: unknown }>;

interface Comms {
  publish(topic: string, data: unknown, retain: boolean): void;
}

export function registerManagementRoutes(RED: NodeRedApi): void {
  const app = RED.httpAdmin as Router | undefined;
  if (!app || registered.has(app)) return;
  registered.add(app);
  const allow = (permission: string) => allowFor(RED, permission);
  const route = (handler: Handler) => async (req: Request, res: Response) => {
    try {
      const store = await stateStoreFor(RED.settings.userDir);
      const { status = 200, body } = await handler(req, store);
      if (body === undefined) res.status(status).end();
      else res.status(status).json(body);
    } catch (err) {
      sendError(RED, req, res, err);
    }
  };

  app.get(
    "/tributary/runs",
    ...allow("tributary.read"),
    route(async (req, store) => ({ body: await store.listRuns(runFilter(req)) })),
  );
  app.get("/tributary/runs/:runId", ...allow("tributary.read"), route(runDetail));
  app.post("/tributary/sources/:nodeId/run", ...allow("tributary.write"), route(startRun));
  app.get(
    "/tributary/sources",
    ...allow("tributary.read"),
    route(async () => ({ body: { sources: listSources() } })),
  );
  app.get(
    "/tributary/watermarks",
    ...allow("tributary.read"),
    route(async (_req, store) => ({ body: { watermarks: await store.listWatermarks() } })),
  );
  app.put("/tributary/watermarks/:nodeId", ...allow("tributary.write"), route(setWatermark));
  app.delete("/tributary/watermarks/:nodeId", ...allow("tributary.write"), route(deleteWatermark));
  app.get("/tributary/review", ...allow("tributary.read"), route(listReview));
  app.post("/tributary/review/:id", ...allow("tributary.write"), route(resolveReview));
  // One set of connection routes for both kinds (DESIGN §5): a CRM connection's schema
  // is its objects, and an object's fields.
  const isCrm = (req: Request) =>
    req.params.id
      ? isCrmConnection(RED, req.params.id)
      : (req.body as { type?: unknown } | undefined)?.type === "tributary-crm-connection";
  app.post(
    "/tributary/connections/test",
    ...allow("tributary-db-connection.write"),
    route(async (req) => (isCrm(req) ? { body: await crmTestForm(req, RED) } : testForm(req, RED))),
  );
  app.post(
    "/tributary/connections/:id/test",
    ...allow("tributary-db-connection.write"),
    route(async (req) =>
      isCrm(req) ? { body: await crmTestDeployed(req, RED) } : testDeployed(req, RED),
    ),
  );

  app.get(
    "/tributary/connections/:id/schema",
    ...allow("tributary-db-connection.read"),
    route(async (req) => ({
      body: isCrm(req)
        ? await crmObjects(req, RED)
        : { tables: await listTables(deployedConnection(req, RED)) },
    })),
  );
  app.get(
    "/tributary/connections/:id/schema/:table",
    ...allow("tributary-db-connection.read"),
    route(async (req) => {
      if (isCrm(req)) return { body: await crmFields(req, RED, req.params.table) };
      try {
        return { body: await describeTableDetail(deployedConnection(req, RED), req.params.table) };
      } catch (err) {
        if ((err as TributaryError).code === "unknown-table")
          throw new ApiError(404, "not-found", (err as Error).message);
        throw err;
      }
    }),
  );

  publishLiveUpdates(RED);
  registerCrmRoutes(RED);
}

function runFilter(req: Request): RunFilter {
  const q = req.query as Record<string, string | undefined>;
  const filter: RunFilter = {};
  if (q.source) filter.sourceId = q.source;
  if (q.flow) filter.flowId = q.flow;
  if (q.status) {
    if (!STATUSES.includes(q.status as RunStatus)) {
      throw new ApiError(
        400,
        "bad-request",
        `status "${q.status}" is not valid: use ${STATUSES.join(", ")}`,
      );
    }
    filter.status = q.status as RunStatus;
  }
  if (q.since) {
    const since = Date.parse(q.since);
    if (Number.isNaN(since))
      throw new ApiError(
        400,
        "bad-request",
        `since "${q.since}" is not a date: use ISO 8601, e.g. 2026-11-01T00:00:00Z`,
      );
    filter.since = new Date(since).toISOString();
  }
  if (q.limit !== undefined) filter.limit = intParam(q.limit, "limit", 1, 500);
  if (q.cursor) filter.cursor = q.cursor;
  return filter;
}

function intParam(value: string, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ApiError(
      400,
      "bad-request",
      `${name} "${value}" must be a whole number from ${min} to ${max}`,
    );
  }
  return n;
}

async function runDetail(req: Request, store: StateStore) {
  const run = await store.getRun(req.params.runId);
  if (!run) throw new ApiError(404, "not-found", `no run ${req.params.runId}`);
  const live = runRegistry.get(run.runId);
  const q = req.query as Record<string, string | undefined>;
  const audit = await store.listAudit(run.runId, {
    limit: q.auditLimit ? intParam(q.auditLimit, "auditLimit", 1, 1000) : 100,
    ...(q.auditCursor ? { cursor: q.auditCursor } : {}),
  });
  const finished = run.finishedAt ? Date.parse(run.finishedAt) : Date.now();
  return {
    body: {
      run: live ? { ...run, counts: { ...live.counts } } : run,
      durationSeconds: (finished - Date.parse(run.startedAt)) / 1000,
      audit,
    },
  };
}

async function startRun(req: Request) {
  const handle = sources.get(req.params.nodeId);
  if (!handle)
    throw new ApiError(
      404,
      "not-found",
      `no deployed tributary source with id ${req.params.nodeId}`,
    );
  const body = (req.body ?? {}) as { mode?: unknown; dryRun?: unknown };
  if (body.mode !== undefined && body.mode !== "full" && body.mode !== "incremental") {
    throw new ApiError(
      400,
      "bad-request",
      `mode "${String(body.mode)}" is not valid: use full or incremental`,
    );
  }
  if (body.dryRun !== undefined && typeof body.dryRun !== "boolean") {
    throw new ApiError(400, "bad-request", "dryRun must be true or false");
  }
  if (handle.isRunning())
    throw new ApiError(409, "conflict", "a run of this source is already under way");
  const { runId, finished } = await handle.start({
    mode: body.mode as SyncMode | undefined,
    dryRun: body.dryRun === true,
  });
  if (runId) return { status: 202, body: { runId } };
  const summary = await finished;
  if (summary.status === "skipped")
    throw new ApiError(409, "conflict", summary.error ?? "a run is already under way");
  throw new ApiError(400, "run-failed", summary.error ?? "the run could not start");
}

function listSources() {
  return sources.list().map((s) => ({
    id: s.id,
    type: s.type,
    name: s.name,
    flowId: s.flowId ?? null,
    running: s.isRunning(),
  }));
}

async function setWatermark(req: Request, store: StateStore) {
  const nodeId = req.params.nodeId;
  const value = (req.body ?? {}).value as unknown;
  if (
    value === undefined ||
    value === null ||
    (typeof value !== "string" && typeof value !== "number")
  ) {
    throw new ApiError(
      400,
      "bad-request",
      "value must be the cursor value to sync from (e.g. 2026-11-01T00:00:00Z), as a string or number",
    );
  }
  const existing = await store.getWatermark(nodeId);
  if (!existing) {
    throw new ApiError(
      404,
      "not-found",
      `source ${nodeId} has no watermark yet: run it once, or DELETE to sync from the start`,
    );
  }
  if (runRegistry.runningFor(nodeId))
    throw new ApiError(
      409,
      "conflict",
      "a run of this source is under way: set the watermark after it ends",
    );
  // An empty key means "from this cursor value on, inclusive" (see table-reader).
  await store.saveWatermark({ ...existing, position: { cursor: value, key: [] }, runId: null });
  return { body: { watermark: await store.getWatermark(nodeId) } };
}

async function deleteWatermark(req: Request, store: StateStore) {
  if (runRegistry.runningFor(req.params.nodeId))
    throw new ApiError(409, "conflict", "a run of this source is under way");
  if (!(await store.deleteWatermark(req.params.nodeId)))
    throw new ApiError(404, "not-found", `source ${req.params.nodeId} has no watermark`);
  return { status: 204 };
}

async function listReview(req: Request, store: StateStore) {
  const status = (req.query.status as string | undefined) ?? "open";
  if (!["open", "resolved", "applied", "superseded"].includes(status)) {
    throw new ApiError(
      400,
      "bad-request",
      `status "${status}" is not valid: use open, resolved, applied or superseded`,
    );
  }
  return { body: { items: await store.listReview({ status: status as "open" }) } };
}

async function resolveReview(req: Request, store: StateStore) {
  const id = Number(req.params.id);
  if (!Number.isInteger(id))
    throw new ApiError(400, "bad-request", `review id "${req.params.id}" is not a number`);
  const resolution = (req.body ?? {}).resolution as ReviewResolution;
  if (!RESOLUTIONS.includes(resolution)) {
    throw new ApiError(
      400,
      "bad-request",
      `resolution "${String(resolution)}" is not valid: use source, target or skip`,
    );
  }
  const item = await store.getReview(id);
  if (!item) throw new ApiError(404, "not-found", `no review item ${id}`);
  const user = (req as Request & { user?: { username?: string } }).user?.username ?? "anonymous";
  if (!(await store.resolveReview(id, resolution, user)))
    throw new ApiError(409, "conflict", `review item ${id} is ${item.status}, not open`);
  return { body: { item: await store.getReview(id) } };
}

/** Tests an undeployed form (see readTestForm for its secrets). */
async function testForm(req: Request, RED: NodeRedApi) {
  const { config, credentials } = readTestForm(req, RED, ["user", "password"]);
  const connection = new DbConnection(parseSettings(config, credentials, RED.settings.userDir));
  try {
    return { body: await probe(connection) };
  } finally {
    await connection.close();
  }
}

function deployedConnection(req: Request, RED: NodeRedApi): DbConnection {
  const node = RED.nodes.getNode(req.params.id) as DbConnectionNode | null;
  if (!node || typeof node.connection !== "function") {
    throw new ApiError(
      404,
      "not-found",
      `no deployed tributary-db-connection ${req.params.id}: deploy it first`,
    );
  }
  return node.connection();
}

async function testDeployed(req: Request, RED: NodeRedApi) {
  return { body: await probe(deployedConnection(req, RED)) };
}

async function probe(connection: DbConnection) {
  try {
    return { ok: true, ...(await connection.test()), connection: connection.label };
  } catch (err) {
    const e = err as TributaryError;
    return { ok: false, error: { code: e.code ?? "error", message: e.message } };
  }
}

/** Pushes run progress to the editor (sidebar) over Node-RED's comms, at most 4 a second. */
function publishLiveUpdates(RED: NodeRedApi): void {
  const comms = (RED as NodeRedApi & { comms?: Comms }).comms;
  if (!comms) return;
  let timer: NodeJS.Timeout | null = null;
  const publish = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      const active = runRegistry.active().map((r) => ({
        runId: r.id,
        sourceId: r.info.sourceId,
        counts: { ...r.counts },
        batchesInFlight: r.batchesInFlight,
      }));
      comms.publish("tributary/runs", { active, at: new Date().toISOString() }, false);
    }, 250);
    timer.unref();
  };
  runRegistry.on("settled", publish);
  runRegistry.on("finished", publish);
  runRegistry.on("watermark", publish);
}
