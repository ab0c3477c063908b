/**
 * A full garbage collection on demand, without running Node.js with --expose-gc (which
 * would hand `gc` to every flow's function nodes): the flag is set now and the function
 * taken from a fresh context, the only place V8 installs it after start-up.
 */
import v8 from "node:v8";
import vm from "node:vm";

let collect: (() => void) | null = null;

/** Collects now; does nothing where the runtime offers no way to (it only saves time). */
export function collectGarbage(): void {
  if (!collect) {
    try {
      v8.setFlagsFromString("--expose-gc");
      const gc: unknown = vm.runInNewContext("typeof gc === 'function' ? gc : null");
      collect = typeof gc === "function" ? (gc as () => void) : () => undefined;
    } catch {
      collect = () => undefined;
    }
  }
  collect();
}
