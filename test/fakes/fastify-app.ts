/**
 * The server every CRM fake runs on: one fastify instance per fake, with a catch-all
 * route (every method, every path) that hands the request to the fake's own dispatch.
 * Bodies are not parsed here: a content-type parser for `*` keeps each body as the
 * bytes the client sent, so form-encoded, SOAP XML, CSV and JSON bodies reach the
 * fake exactly as written, and each fake parses what its provider would.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { AddressInfo } from "node:net";

export type FakeRoute = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** Large enough for Bulk API CSV uploads in tests (fastify's default is 1 MiB). */
const BODY_LIMIT = 512 * 1024 * 1024;

export function createFakeApp(route: FakeRoute): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    // stop() ends keep-alive connections too, as closeAllConnections() did.
    forceCloseConnections: true,
    // app.all already answers HEAD; the catch-all must not be declared twice.
    exposeHeadRoutes: false,
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
  const handler = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    await route(req, reply);
    return reply;
  };
  app.all("/", handler);
  app.all("/*", handler);
  return app;
}

/** Listens on a free port of 127.0.0.1 and returns the fake's base URL. */
export async function listenLocal(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: "127.0.0.1" });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/** The request body as the client sent it (empty for a request without one). */
export function rawBody(req: FastifyRequest): string {
  const body = req.body;
  if (Buffer.isBuffer(body)) return body.toString("utf8");
  return typeof body === "string" ? body : "";
}

/** Writes a reply the fake has already serialized; undefined sends no body. */
export function sendRaw(
  reply: FastifyReply,
  status: number,
  headers: Record<string, string>,
  payload?: string,
): void {
  reply.code(status).headers(headers);
  if (payload === undefined) reply.send();
  else reply.send(Buffer.from(payload, "utf8"));
}
