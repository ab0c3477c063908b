/**
 * `${ENV_VAR}` in connection settings, so a shared flow carries no secrets. Node-RED
 * substitutes only whole-value `${VAR}` in node properties and not in credentials;
 * this covers both, and text around the reference.
 */
export function resolveEnv(value: string, env: NodeJS.ProcessEnv = process.env): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_all, name: string) => env[name] ?? "");
}

/** Names of referenced variables that are not set, to report them in one error. */
export function missingEnv(value: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const names = [...value.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]);
  return names.filter((name) => env[name] === undefined);
}
