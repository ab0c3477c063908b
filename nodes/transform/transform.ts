import type { NodeDef, NodeRedApi, RedNode } from "../lib/red";
import { TributaryError } from "../lib/db/errors";
import {
  RecordError,
  RecordMapper,
  type CompileExpression,
  type MappingRow,
} from "../lib/transform/mapping";
import { RecordValidator } from "../lib/transform/validator";
import { runRegistry } from "../lib/run-registry";
import { errorStatus, formatCount, ThrottledStatus } from "../lib/status";
import type { Outcome, SyncMeta, SyncRecord, Value } from "../lib/types";

interface JsonataUtil {
  prepareJSONataExpression(expression: string, node: RedNode): unknown;
  evaluateJSONataExpression(
    expr: unknown,
    msg: unknown,
    cb: (err: Error | null, value: unknown) => void,
  ): void;
}

export = function register(RED: NodeRedApi): void {
  function TransformNode(this: RedNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const util = (RED as NodeRedApi & { util: JsonataUtil }).util;
    // Node-RED's own JSONata, so expressions behave as in change and switch nodes.
    const compile: CompileExpression = (expression) => {
      const prepared = util.prepareJSONataExpression(expression, node);
      return (record) =>
        new Promise((resolve, reject) =>
          util.evaluateJSONataExpression(prepared, record, (err, value) =>
            err ? reject(err) : resolve(value),
          ),
        );
    };
    let mapper: RecordMapper | null = null;
    let validator: RecordValidator | null = null;
    let configError: Error | null = null;
    try {
      const rows = Array.isArray(def.mappings) ? (def.mappings as MappingRow[]) : [];
      mapper = new RecordMapper(rows, { dropUnmapped: def.dropUnmapped === true }, compile);
      const schema = typeof def.schema === "string" ? def.schema.trim() : "";
      if (schema) validator = new RecordValidator(schema);
    } catch (err) {
      configError = err as Error;
      node.status(errorStatus(configError.message));
      node.error(configError.message);
    }
    const tally = { valid: 0, invalid: 0 };

    node.on("input", (msg, send, done) => {
      const sync = msg.sync as SyncMeta | undefined;
      const fail = (err: Error) => {
        if (sync?.runId) runRegistry.failBatch(sync.runId, sync.batch, err, undefined, node.id);
        node.status(errorStatus(err.message));
        done(err);
      };
      if (configError || !mapper) return fail(configError ?? new Error("not configured"));
      if (!Array.isArray(msg.payload)) {
        return fail(
          new TributaryError(
            "input",
            "msg.payload must be an array of records (a batch from a tributary source)",
          ),
        );
      }
      transform(msg.payload as SyncRecord[], sync?.key ?? []).then(({ valid, invalid }) => {
        tally.valid += valid.length;
        tally.invalid += invalid.length;
        const failed: Outcome[] = invalid.map((i) => ({
          key: i.key,
          action: "failed",
          error: `invalid: ${i.errors.join("; ")}`,
        }));
        msg.payload = valid;
        if (sync) sync.outcomes = [...(sync.outcomes ?? []), ...failed];
        const invalidMsg = invalid.length
          ? {
              payload: invalid.map((i) => i.record),
              errors: invalid.map(({ key, errors }) => ({ key, errors })),
              sync,
            }
          : null;
        status.set({
          fill: tally.invalid ? "yellow" : "green",
          shape: "dot",
          text: `${formatCount(tally.valid)} valid, ${formatCount(tally.invalid)} invalid`,
        });
        if (valid.length === 0 && sync?.runId) {
          // Nothing goes on to a sink, so the batch settles here.
          runRegistry.settle(sync.runId, sync.batch, sync.outcomes, node.id);
          send([null, invalidMsg]);
        } else {
          send([msg, invalidMsg]);
        }
        done();
      }, fail);
    });

    async function transform(records: SyncRecord[], keyFields: string[]) {
      const valid: SyncRecord[] = [];
      const invalid: Array<{ key: Value[]; record: SyncRecord; errors: string[] }> = [];
      // The key is built only for a record that is set aside.
      const keyOf = (record: SyncRecord) => keyFields.map((k) => record[k] ?? null);
      for (const record of records) {
        try {
          const result = mapper!.mapRecord(record);
          const mapped = result instanceof Promise ? await result : result;
          const errors = validator ? validator.check(mapped) : [];
          if (errors.length) invalid.push({ key: keyOf(record), record: mapped, errors });
          else valid.push(mapped);
        } catch (err) {
          if (!(err instanceof RecordError)) throw err;
          invalid.push({ key: keyOf(record), record, errors: [err.message] });
        }
      }
      return { valid, invalid };
    }
  }

  RED.nodes.registerType("tributary-transform", TransformNode);
};
