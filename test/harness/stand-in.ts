/**
 * Puts the STAND-IN K3s installer and binary (test/harness/stand-in-k3s/, not K3s: K3s cannot be
 * downloaded on the test machines) on lab hosts, and reads back what it recorded.
 */
import { copyFileSync, mkdirSync, chmodSync } from "fs";
import { join } from "path";
import { HOST_LAB_DIR, Lab, LabHost } from "./lab";

/** The install script URL to give K3sServer/K3sAgent (`install.scriptUrl`) on lab hosts. */
export const STAND_IN_INSTALLER_URL = `file://${HOST_LAB_DIR}/stand-in/install.sh`;
const SOURCE = join(__dirname, "stand-in-k3s");

/** Make the stand-in available on every host of the lab (read-only to the host's scripts). */
export function serveStandIn(lab: Lab): void {
  for (const h of lab.hosts) {
    const d = join(h.dir, "share", "stand-in");
    mkdirSync(d, { recursive: true });
    for (const f of ["install.sh", "k3s", "README.md"]) {
      copyFileSync(join(SOURCE, f), join(d, f));
      chmodSync(join(d, f), f === "README.md" ? 0o644 : 0o755);
    }
  }
}

export interface StandInEvent {
  readonly at: number;
  /** install | service-start | service-failed | uninstall | kubectl | unsupported */
  readonly kind: string;
  readonly text: string;
}

/** Everything the stand-in recorded on a host, oldest first. */
export async function standInEvents(host: LabHost): Promise<StandInEvent[]> {
  const r = await host.exec("cat /var/lib/k3s-stand-in/events.log 2>/dev/null || true");
  return r.stdout.split("\n").filter((l) => l.trim()).map((l) => {
    const m = /^(\d+) (\S+)\s?(.*)$/.exec(l);
    if (!m) throw new Error(`[${host.name}] unreadable stand-in event: ${l}`);
    return { at: Number(m[1]), kind: m[2], text: m[3] };
  });
}

/** Counts of installer runs and service starts on a host. */
export async function standInCounts(host: LabHost): Promise<{ installs: number; starts: number; uninstalls: number }> {
  const ev = await standInEvents(host);
  return {
    installs: ev.filter((e) => e.kind === "install").length,
    starts: ev.filter((e) => e.kind === "service-start").length,
    uninstalls: ev.filter((e) => e.kind === "uninstall").length,
  };
}

/** The environment of every installer run, in order. */
export async function standInInstallEnvironments(host: LabHost): Promise<string[]> {
  const r = await host.exec("for f in $(ls /var/lib/k3s-stand-in/install-env-* 2>/dev/null | sort -t- -k3 -n); do cat \"$f\"; echo '\x1e'; done");
  return r.stdout.split("\x1e").map((s) => s.trim()).filter(Boolean);
}

/** pids of the running stand-in service processes (`k3s server` / `k3s agent`) on a host. */
export async function standInServicePids(host: LabHost): Promise<number[]> {
  const r = await host.exec("pgrep -f '^/bin/sh /usr/local/bin/k3s (server|agent)$' || true");
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}
