/**
 * What the CRM fakes share: a fastify server (one per fake) with JSON bodies, a log of
 * requests, and faults on demand (429 with Retry-After, 5xx, dropped connections), so
 * tests drive the real axios client against them.
 */
import type http from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { createFakeApp, listenLocal, rawBody, sendRaw } from "./fastify-app";

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: unknown;
  rawBody: string;
}

export interface FakeReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface LoggedRequest {
  method: string;
  path: string;
  query: string;
  status: number;
  at: number;
  body: unknown;
}

export type Fault =
  { kind: "status"; status: number; retryAfter?: string; body?: unknown } | { kind: "drop" };

export abstract class HttpFake {
  readonly log: LoggedRequest[] = [];
  private app: FastifyInstance | null = null;
  private faults: Array<{ fault: Fault; match?: (req: FakeRequest) => boolean }> = [];
  /** Requests being handled right now, and the most ever at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** Delay before each reply, to let concurrency show. */
  latencyMs = 0;
  url = "";
  /** Called for every request before faults and handlers (e.g. to expire a token mid-run). */
  onRequest: ((req: FakeRequest) => void) | null = null;

  protected abstract handle(req: FakeRequest): FakeReply | Promise<FakeReply>;
  /** The body a fault's status carries, in the provider's error format. */
  protected abstract errorBody(status: number, message: string): unknown;

  async start(): Promise<string> {
    const app = createFakeApp((req, reply) => this.dispatch(req, reply));
    this.url = await listenLocal(app);
    this.app = app;
    return this.url;
  }

  async stop(): Promise<void> {
    if (!this.app) return;
    const app = this.app;
    this.app = null;
    await app.close();
  }

  /** The next `count` matching requests get this fault instead of an answer. */
  injectFault(fault: Fault, count = 1, match?: (req: FakeRequest) => boolean): void {
    for (let i = 0; i < count; i += 1) this.faults.push({ fault, match });
  }

  /** 429 with Retry-After (seconds) on the next `count` matching requests. */
  rateLimit(count: number, retryAfterSeconds: number, match?: (req: FakeRequest) => boolean): void {
    this.injectFault(
      { kind: "status", status: 429, retryAfter: String(retryAfterSeconds) },
      count,
      match,
    );
  }

  requests(method: string, pathPrefix: string): LoggedRequest[] {
    return this.log.filter((r) => r.method === method && r.path.startsWith(pathPrefix));
  }

  private async dispatch(req: FastifyRequest, res: FastifyReply): Promise<void> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const raw = rawBody(req);
      const url = new URL(req.url ?? "/", "http://fake");
      const contentType = String(req.headers["content-type"] ?? "");
      let body: unknown = raw;
      if (contentType.includes("json") && raw) body = JSON.parse(raw);
      else if (contentType.includes("x-www-form-urlencoded"))
        body = Object.fromEntries(new URLSearchParams(raw));
      const request: FakeRequest = {
        method: req.method ?? "GET",
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body,
        rawBody: raw,
      };
      if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
      this.onRequest?.(request);
      const i = this.faults.findIndex((f) => !f.match || f.match(request));
      let reply: FakeReply;
      if (i >= 0) {
        const [{ fault }] = this.faults.splice(i, 1);
        if (fault.kind === "drop") {
          this.record(request, 0);
          res.hijack();
          req.raw.socket.destroy();
          return;
        }
        reply = {
          status: fault.status,
          body: fault.body ?? this.errorBody(fault.status, `fault ${fault.status} injected`),
          headers: fault.retryAfter ? { "Retry-After": fault.retryAfter } : {},
        };
      } else {
        reply = await this.handle(request);
      }
      this.record(request, reply.status);
      const payload = reply.body === undefined ? "" : JSON.stringify(reply.body);
      sendRaw(
        res,
        reply.status,
        { "Content-Type": "application/json", ...(reply.headers ?? {}) },
        payload,
      );
    } catch (err) {
      sendRaw(
        res,
        500,
        { "Content-Type": "application/json" },
        JSON.stringify(this.errorBody(500, (err as Error).message)),
      );
    } finally {
      this.inFlight -= 1;
    }
  }

  private record(req: FakeRequest, status: number): void {
    this.log.push({
      method: req.method,
      path: req.path,
      query: req.query.toString(),
      status,
      at: Date.now(),
      body: req.body,
    });
  }
}
