/**
 * The hosted runtime: fastify with Node-RED embedded (DESIGN.md §5). Requests are
 * dispatched by path prefix in the server factory, so fastify's body parsing never
 * touches Node-RED's traffic: /health and /metrics go to fastify, /hooks to the
 * flows' HTTP nodes, everything else to the editor and admin API.
 */
import http from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import express from "express";
import bcrypt from "bcryptjs";
import { nodeRedSettings } from "../settings";
import { stateStoreFor } from "../nodes/lib/state-store";
import { metricsRegistry, startMetrics } from "../nodes/lib/observability/metrics";
import { loadNodeRed, type EmbeddedRed } from "./node-red";
import { adminPasswordHash, credentialSecret, ensureUserDir, type Logger } from "./user-dir";
import { installDemo } from "./demo";

export interface ServerOptions {
  userDir: string;
  port: number;
  host: string;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
}

export interface RunningServer {
  fastify: FastifyInstance;
  red: EmbeddedRed;
  url: string;
  close(): Promise<void>;
}

const OWN_ROUTES = /^\/(health|metrics)(\/|\?|$)/;

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const env = options.env ?? process.env;
  const log = options.log ?? console;
  const userDir = ensureUserDir(options.userDir);
  const settings = nodeRedSettings({
    userDir,
    credentialSecret: credentialSecret(userDir, env, log),
    adminPasswordHash: adminPasswordHash(userDir, env, log),
    viewerPasswordHash: env.TRIBUTARY_VIEWER_PASSWORD
      ? bcrypt.hashSync(env.TRIBUTARY_VIEWER_PASSWORD, 10)
      : null,
    editor: true,
  });
  if (installDemo(userDir))
    log.info(`first start: deployed the demo flow (SQLite files in ${userDir}/demo)`);

  const red = loadNodeRed();
  const nodeRedApp = express();
  nodeRedApp.disable("x-powered-by");
  let started = false;

  const fastify = Fastify({
    logger: false,
    serverFactory: (handler) =>
      http.createServer((req, res) => {
        const url = req.url ?? "/";
        if (OWN_ROUTES.test(url)) return handler(req, res);
        if (!started) {
          res.writeHead(503, { "content-type": "application/json", "retry-after": "2" });
          res.end(JSON.stringify({ error: { code: "starting", message: "Node-RED is starting" } }));
          return;
        }
        nodeRedApp(req, res);
      }),
  });

  fastify.get("/health", async (_req, reply) => {
    let stateStore = false;
    try {
      await (await stateStoreFor(userDir)).ping();
      stateStore = true;
    } catch {
      stateStore = false;
    }
    const ok = started && stateStore;
    reply.code(ok ? 200 : 503);
    return {
      status: ok ? "ok" : started ? "unavailable" : "starting",
      nodeRed: started,
      stateStore,
    };
  });

  startMetrics();
  fastify.get("/metrics", async (_req, reply) => {
    reply.type(metricsRegistry.contentType);
    return metricsRegistry.metrics();
  });

  fastify.addHook("onClose", async () => {
    await red.stop();
  });

  await fastify.ready();
  // The editor's websocket (comms) listens for 'upgrade' on this server.
  red.init(fastify.server, settings);
  nodeRedApp.use("/hooks", red.httpNode);
  nodeRedApp.use("/", red.httpAdmin);
  await fastify.listen({ port: options.port, host: options.host });
  await red.start();
  // Open the state store now, so the first scheduled run does not pay for it; a store
  // that cannot open shows on /health and fails each run with its reason.
  await stateStoreFor(userDir).catch(() => undefined);
  started = true;
  const address = fastify.server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  const url = `http://${options.host === "0.0.0.0" ? "127.0.0.1" : options.host}:${port}`;
  return {
    fastify,
    red,
    url,
    close: () => fastify.close(),
  };
}
