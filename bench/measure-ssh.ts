/**
 * SSH sessions per node, MEASURED: the bench's 6-node cluster stack is deployed onto throwaway
 * hosts of the real-host harness (test/harness: network namespaces, a real OpenSSH server each,
 * real ufw) by the real `terraform` (1.11.4, on cdk.tf.json as synthesized; the real random and
 * local providers from tools/build.sh), then deployed again with no change.
 * Each host's sshd log is read before and after each run; "Accepted publickey" lines are the SSH
 * connections that host accepted. The K3s installer is the harness's recording stand-in (K3s
 * cannot be downloaded here); its own log says how many times an installer ran.
 *
 * Only the cluster stack runs here: the mesh stack talks HTTPS to the Kubernetes API, never SSH,
 * and no API server can run here.
 */
import { spawnSync } from "child_process";
import { cpSync, existsSync, readFileSync } from "fs";
import { join } from "path";
import { App } from "cdktf";
import { buildCluster, Variant } from "./cluster";
import { createLab, Lab } from "../test/harness/lab";
import { serveStandIn, STAND_IN_INSTALLER_URL, standInCounts } from "../test/harness/stand-in";
import { synthesizeIn, TerraformCli } from "../test/harness/terraform-cli";
import { applyJson, JsonRun } from "../test/harness/terraform-json";

export interface MeasuredSsh {
  /** Host name → SSH connections accepted during the fresh deploy. */
  readonly fresh: Record<string, number>;
  /** Host name → during the no-change re-run. */
  readonly rerun: Record<string, number>;
  /** K3s installer runs on the re-run, all hosts together. */
  readonly rerunInstalls: number;
  /** Resources the re-run planned to change (anything but noop/read). */
  readonly rerunChanges: string[];
  readonly freshSeconds: number;
  readonly rerunSeconds: number;
  readonly rateLimitSsh: boolean;
  /** Then the server's K3s version alone is bumped and applied: what Terraform replaced. */
  readonly serverVersionBump: { replaced: string[]; installerRuns: Record<string, number>; sessions: Record<string, number> };
}

const TOOLS = ["ufw", "iptables", "sshd", "unshare", "nsenter", "ip", "openssl", "ssh", "ssh-keygen", "nc"];

/** Why the harness cannot run here, or undefined when it can. */
export function harnessUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (network and mount namespaces)";
  const missing = TOOLS.filter((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status !== 0);
  return missing.length ? `missing ${missing.join(", ")}` : undefined;
}

function accepted(logFile: string): number {
  if (!existsSync(logFile)) return 0;
  return readFileSync(logFile, "utf8").split("\n").filter((l) => /Accepted publickey for /.test(l)).length;
}

export async function measureSsh(nodes: number, rateLimitSsh = false): Promise<MeasuredSsh> {
  // The compiled harness looks for the stand-in installer and the stand-in providers next to itself.
  for (const dir of [join("harness", "stand-in-k3s"), "standin-providers"]) {
    const copy = join(__dirname, "..", "test", dir);
    const source = join(__dirname, "..", "..", "..", "test", dir);
    if (existsSync(source)) cpSync(source, copy, { recursive: true, force: true });
  }

  const names = Array.from({ length: nodes }, (_, i) => (i === 0 ? "server" : `agent-${i - 1}`));
  // The harness allows documentation ranges only; the tests use them too (e2e 198.51.100,
  // firewall-hosts 203.0.113), so take whichever is free now; createLab refuses a busy one.
  let lab: Lab | undefined;
  let lastError: unknown;
  for (const net of ["203.0.113", "198.51.100"]) {
    try {
      lab = await createLab({ hosts: names.map((name, i) => ({ name, address: `${net}.${110 + i}` })) });
      break;
    } catch (e) {
      lastError = e;
      if (!/already in use/.test((e as Error).message)) throw e;
    }
  }
  if (!lab) throw lastError;
  try {
    serveStandIn(lab);
    const l = lab;
    const synth = (variant: Variant): string => {
      const outdir = join(l.dir, "cdktf.out");
      const app = new App({ outdir });
      const built = buildCluster(app, { nodes, servers: 1 }, variant, {
      address: (i) => l.hosts[i].address,
      ssh: (i) => ({ user: l.hosts[i].sshUser, privateKeyPath: l.privateKeyPath, hostKey: l.hosts[i].hostKey, timeout: "90s" }),
      install: { scriptUrl: STAND_IN_INSTALLER_URL, readyTimeoutSeconds: 30 },
      adminCidrs: [`${l.adminAddress}/32`],
      rateLimitSsh,
        withoutMesh: true,
      });
      // cdktf's default local backend puts the state in the synthesizing process's cwd: the lab's dir.
      synthesizeIn(l.dir, () => app.synth());
      return join(outdir, "stacks", built.cluster.node.id);
    };
    // One working directory (and so one state) for every run: each variant is synthesized into it.
    const stackDir = synth("base");
    const tf = new TerraformCli(stackDir);
    await tf.init();
    const apply = async (): Promise<JsonRun> => {
      const r = await applyJson(tf, { parallelism: 10, check: false });
      if (!r.ok) throw new Error(`terraform apply failed: ${r.errors.map((e) => `${e.summary}: ${e.detail}`).join("; ")}`);
      return r;
    };
    const log = (i: number) => join(l.hosts[i].dir, "share", "sshd.log");
    const snapshot = () => l.hosts.map((_, i) => accepted(log(i)));
    const perHostInstalls = async () => (await Promise.all(l.hosts.map((h) => standInCounts(h)))).map((c) => c.installs);
    const installs = async () => (await perHostInstalls()).reduce((a, c) => a + c, 0);

    const s0 = snapshot();
    const t0 = Date.now();
    await apply();
    const t1 = Date.now();
    const s1 = snapshot();
    const i1 = await installs();
    const second = await apply();
    const t2 = Date.now();
    const s2 = snapshot();
    const i2 = await installs();
    const per = (a: number[], b: number[]) => Object.fromEntries(names.map((n, i) => [n, b[i] - a[i]]));
    const h2 = await perHostInstalls();
    if (synth("k3s-version-server") !== stackDir) throw new Error("the variant was synthesized elsewhere");
    const bump = await apply();
    const s3 = snapshot();
    const h3 = await perHostInstalls();
    return {
      serverVersionBump: {
        replaced: Object.entries(bump.plan).filter(([, a]) => a === "replace" || a === "create").map(([addr]) => addr),
        installerRuns: per(h2, h3),
        sessions: per(s2, s3),
      },
      fresh: per(s0, s1),
      rerun: per(s1, s2),
      rerunInstalls: i2 - i1,
      rerunChanges: Object.entries(second.plan).filter(([, a]) => a !== "noop" && a !== "read").map(([addr, a]) => `${addr}: ${a}`),
      freshSeconds: (t1 - t0) / 1000,
      rerunSeconds: (t2 - t1) / 1000,
      rateLimitSsh,
    };
  } finally {
    await lab.cleanup();
  }
}
