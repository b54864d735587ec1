/**
 * Samples the command line of every process on this machine — which includes every lab host's
 * processes, since their PID namespaces are nested in this one — in the background, so tests can
 * show that no secret ever appeared in a process list (`ps`, /proc/PID/cmdline).
 */
import { readdirSync, readFileSync } from "fs";

export interface CmdlineSampler {
  /** Distinct command lines seen so far (arguments joined by spaces). */
  readonly seen: Set<string>;
  /** How many sweeps of /proc were made. */
  sweeps(): number;
  stop(): void;
}

export function startCmdlineSampler(intervalMs = 25): CmdlineSampler {
  const seen = new Set<string>();
  let sweeps = 0;
  const sweep = () => {
    let pids: string[];
    try { pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p)); } catch { return; }
    for (const p of pids) {
      try {
        const raw = readFileSync(`/proc/${p}/cmdline`);
        if (raw.length) seen.add(raw.toString("utf8").replace(/\0+$/, "").split("\0").join(" "));
      } catch { /* exited meanwhile */ }
    }
    sweeps++;
  };
  const timer = setInterval(sweep, intervalMs);
  timer.unref();
  sweep();
  return { seen, sweeps: () => sweeps, stop: () => clearInterval(timer) };
}

/** The secrets (or their first 12+ characters) that occur in any of `lines`, with the line. */
export function leaks(lines: Iterable<string>, secrets: Iterable<string>): string[] {
  const out: string[] = [];
  const probes = [...secrets].filter((s) => s.length >= 8);
  for (const l of lines) {
    for (const s of probes) if (l.includes(s)) out.push(`${s.slice(0, 4)}… in: ${l.slice(0, 200)}`);
  }
  return out;
}
