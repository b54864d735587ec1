/** Run shellcheck on a rendered script (as POSIX sh, which is what the scripts promise). */
import { spawnSync } from "child_process";

export function shellcheck(script: string): string {
  const r = spawnSync("shellcheck", ["--shell=sh", "--severity=style", "-"], { input: script, encoding: "utf8" });
  if (r.error) throw new Error(`shellcheck could not run (install the shellcheck package): ${r.error.message}`);
  return r.status === 0 ? "" : r.stdout + r.stderr;
}
