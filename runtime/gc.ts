/**
 * A full garbage collection on demand, without running Node.js with --expose-gc (which
 * would hand `gc` to every flow's function nodes): the flag is set now and the function
 * taken from a fresh context, the only place V8 installs it after start-up.
 */
import v8 from "node:v8";
import vm from "node:vm";

let collect: (() => void) | null = null;

export function collectGarbage(): void {
  if (!collect) {
    v8.setFlagsFromString("--expose-gc");
    collect = vm.runInNewContext("gc") as () => void;
  }
  collect();
}
