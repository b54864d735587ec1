/**
 * A highly available cluster end to end on real hosts, with the real `terraform` binary: three
 * servers and three agents deploy (servers joining one at a time with the CA-pinned server token,
 * no agent holding the server token), then a K3s version bump rolls (servers one at a time, agents
 * one at a time, each cordoned and drained before its restart and uncordoned after), then a change
 * to the install script alone re-runs every install without a restart, then a server is
 * decommissioned.
 *
 * Real: Terraform 1.11.4 on cdk.tf.json exactly as cdktf wrote it (test/harness/terraform-cli.ts),
 * the hosts (network namespaces with their own OpenSSH server), SSH, sudo, our rendered scripts,
 * the kubeconfig fetch program, flock/date/sh on the hosts.
 * NOT real:
 *  - the providers random and local: stand-ins on Terraform's plugin protocol (test/standin-providers/);
 *  - K3s: the STAND-IN installer and binary (test/harness/stand-in-k3s/). It records every install,
 *    service start, join and `kubectl` call with a millisecond timestamp; a joining server checks the
 *    K10 hash of its token against the CA served by the server it joins and refuses a token without
 *    it; nodes register with the server they join, which is what `kubectl get node` then knows
 *    (known-nodes-only). It runs no Kubernetes: cordon, drain and Ready are recorded, not enforced.
 * Run under the lab lock: flock /tmp/cdktf-lab.lock npx jest test/e2e-ha.test.ts
 */
import { spawnSync } from "child_process";
import { join } from "path";
import { App, TerraformStack } from "cdktf";
import { K3sAgent, K3sServer } from "../lib";
import { K3S_DEFAULT_VERSION } from "../lib/versions";
import { createLab, Lab, LabHost } from "./harness/lab";
import { serveStandIn, STAND_IN_INSTALLER_URL, standInEvents, StandInEvent } from "./harness/stand-in";
import { synthesizeIn, TerraformCli } from "./harness/terraform-cli";

jest.setTimeout(900000);

const NET = "198.51.100";
const canRun = process.getuid?.() === 0 && ["sshd", "unshare", "nsenter", "ip", "openssl", "curl", "socat", "nc", "flock", "terraform"]
  .every((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
if (!canRun && process.env.CI) throw new Error("the HA end-to-end test needs root, terraform, sshd, unshare, nsenter, ip, openssl, curl, socat, nc and flock");
const describeReal = canRun ? describe : describe.skip;

const SERVERS = ["s0", "s1", "s2"];
const AGENTS = ["a0", "a1", "a2"];
const HOSTS = [
  ...SERVERS.map((name, i) => ({ name, address: `${NET}.${10 + i}` })),
  ...AGENTS.map((name, i) => ({ name, address: `${NET}.${20 + i}` })),
];
/** One minor release above the default: the rolling upgrade. */
const BUMPED = K3S_DEFAULT_VERSION.replace(/^v1\.(\d+)\.\d+/, (_m, minor) => `v1.${Number(minor) + 1}.1`);

let lab: Lab;
let tf: TerraformCli;
const h = (name: string): LabHost => lab.host(name);

function clusterStack(o: { version?: string; decommission?: string[]; installWireguardTools?: boolean } = {}): void {
  const app = new App({ outdir: join(lab.dir, "cdktf.out") });
  const stack = new TerraformStack(app, "cluster");
  const ssh = (x: LabHost) => ({ user: x.sshUser, privateKeyPath: lab.privateKeyPath, hostKey: x.hostKey, timeout: "20s" });
  const install = { scriptUrl: STAND_IN_INSTALLER_URL, readyTimeoutSeconds: 30, installWireguardTools: o.installWireguardTools };
  const first = new K3sServer(stack, "s0", { host: { address: h("s0").address, ssh: ssh(h("s0")) }, install, version: o.version });
  const servers = [first, ...SERVERS.slice(1).map((name) => new K3sServer(stack, name, {
    join: first, host: { address: h(name).address, ssh: ssh(h(name)) }, install, version: o.version, decommission: o.decommission?.includes(name),
  }))];
  AGENTS.forEach((name, i) => new K3sAgent(stack, name, {
    server: servers[i], host: { address: h(name).address, ssh: ssh(h(name)) }, install, version: o.version, drainTimeoutSeconds: 10,
  }));
  synthesizeIn(lab.dir, () => app.synth());
}

const events: Record<string, StandInEvent[]> = {};
async function readEvents(): Promise<void> {
  for (const x of lab.hosts) events[x.name] = await standInEvents(x);
}
/** The n-th (0-based) event of a kind on a host whose text starts with `prefix`. */
function nth(host: string, kind: string, n: number, prefix = ""): StandInEvent {
  const e = events[host].filter((x) => x.kind === kind && x.text.startsWith(prefix))[n];
  if (!e) throw new Error(`${host}: no ${kind} event #${n} (${prefix}); have ${events[host].map((x) => `${x.kind} ${x.text}`).join(" | ")}`);
  return e;
}
/** kubectl calls recorded on the first server about a node, with their times. */
const kubectlAbout = (node: string, verb: string) =>
  events.s0.filter((e) => e.kind === "kubectl" && new RegExp(`^${verb} (node )?${node}( |$)`).test(e.text));

describeReal("an HA cluster on real hosts with real terraform (K3s replaced by a recording stand-in)", () => {
  beforeAll(async () => {
    lab = await createLab({ hosts: HOSTS });
    serveStandIn(lab);
    // The stand-in's `kubectl get node` then knows only nodes that registered, as K3s does.
    for (const x of lab.hosts) await x.run("mkdir -p -m 0700 /var/lib/k3s-stand-in && touch /var/lib/k3s-stand-in/known-nodes-only");
    clusterStack();
    tf = new TerraformCli(join(lab.dir, "cdktf.out", "stacks", "cluster"), { timeoutMs: 600_000 });
    await tf.init();
  });

  afterAll(async () => {
    await lab?.cleanup();
  });

  test("fresh deploy: servers join one at a time, with the CA-pinned server token; agents after the last server", async () => {
    await tf.apply({ parallelism: 10 });
    await readEvents();
    const caHash = (await h("s0").run("sha256sum /var/lib/rancher/k3s/server/tls/server-ca.crt")).split(" ")[0];
    expect(caHash).toMatch(/^[0-9a-f]{64}$/);
    for (let i = 1; i < SERVERS.length; i++) {
      const join = nth(SERVERS[i], "server-join", 0);
      expect(join.text).toContain(`url=https://${h("s0").address}:6443`);
      expect(join.text).toContain("token-form=K10<hash>::server:");
      expect(join.text).toContain(`ca-hash-verified=${caHash}`);
      // Serial: this server's install began after the previous server's K3s was up.
      expect(nth(SERVERS[i], "install", 0).at).toBeGreaterThan(nth(SERVERS[i - 1], "service-start", 0).at);
      const config = await h(SERVERS[i]).run("cat /etc/rancher/k3s/config.yaml");
      expect(config).toMatch(/^token: "K10[0-9a-f]{64}::server:[A-Za-z0-9]+"$/m);
      expect(config).not.toMatch(/cluster-init/);
    }
    expect(await h("s0").run("cat /etc/rancher/k3s/config.yaml")).toMatch(/^cluster-init: true$/m);
    const lastServerUp = nth("s2", "service-start", 0).at;
    for (const a of AGENTS) expect(nth(a, "install", 0).at).toBeGreaterThan(lastServerUp);
    // A first install: the rollout steps found no Node, so nothing was cordoned or drained.
    expect(events.s0.filter((e) => e.kind === "kubectl" && /^(cordon|drain|label)/.test(e.text))).toEqual([]);
  });

  test("no agent holds the server token or an admin kubeconfig", async () => {
    const secret = (await h("s0").run("sed -n 's/^token: \"\\(.*\\)\"$/\\1/p' /etc/rancher/k3s/config.yaml")).trim();
    expect(secret).toMatch(/^[A-Za-z0-9]{48}$/);
    for (const a of AGENTS) {
      const config = await h(a).run("cat /etc/rancher/k3s/config.yaml");
      expect(config).toMatch(/^token: "K10[0-9a-f]{64}::node:[A-Za-z0-9]+"$/m);
      expect(config).toContain(`server: "https://${h("s0").address}:6443"`);
      const found = await h(a).exec(`grep -rlF -- '${secret}' /etc /var/lib /run /tmp /root /home 2>/dev/null || true`);
      expect(found.stdout.trim()).toBe("");
      expect((await h(a).exec("test -e /etc/rancher/k3s/k3s.yaml")).code).not.toBe(0);
    }
  });

  test("with the first server's K3s stopped, a plan of the unchanged cluster still succeeds and changes nothing", async () => {
    // The stand-in service's pid, in the host's own /run; killed inside that host only.
    await h("s0").run("kill \"$(cat /run/k3s-stand-in.pid)\"");
    // Stopped: its API port (the stand-in's /cacerts listener) closes. (kill -0 would still see the
    // process as a zombie: nothing in the host reaps it.)
    await h("s0").run("i=0; while nc -z 127.0.0.1 6443 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done");
    expect((await h("s0").exec("nc -z 127.0.0.1 6443")).code).not.toBe(0);
    const plan = await tf.plan({ detailedExitcode: true });
    expect(plan.code).toBe(0);
  });

  test("a version bump rolls: servers one at a time, then agents one at a time, cordoned, drained, restarted, uncordoned", async () => {
    clusterStack({ version: BUMPED });
    await tf.apply({ parallelism: 10 });
    await readEvents();
    // Servers: each restart begins after the previous server is back.
    for (let i = 0; i < SERVERS.length; i++) {
      expect(nth(SERVERS[i], "install", 1).text).toContain(`version=${BUMPED}`);
      if (i > 0) expect(nth(SERVERS[i], "install", 1).at).toBeGreaterThan(nth(SERVERS[i - 1], "service-start", 1).at);
    }
    const serversDone = nth("s2", "service-start", 1).at;
    // Agents: a window from its slot (label) to its release, with cordon → drain → restart → uncordon inside.
    const windows = AGENTS.map((a) => {
      const take = kubectlAbout(a, "label").find((e) => /rolling=true/.test(e.text))!;
      const cordon = kubectlAbout(a, "cordon")[0];
      const drain = kubectlAbout(a, "drain")[0];
      const install = nth(a, "install", 1);
      const start = nth(a, "service-start", 1);
      const uncordon = kubectlAbout(a, "uncordon")[0];
      const release = kubectlAbout(a, "label").find((e) => /rolling-/.test(e.text))!;
      for (const e of [take, cordon, drain, uncordon, release]) expect(e).toBeDefined();
      const order = [take.at, cordon.at, drain.at, install.at, start.at, uncordon.at, release.at];
      expect([...order].sort((x, y) => x - y)).toEqual(order);
      expect(take.at).toBeGreaterThan(serversDone);
      return { a, from: take.at, to: release.at };
    }).sort((x, y) => x.from - y.from);
    // maxUnavailable 1: no two agents' windows overlap.
    for (let i = 1; i < windows.length; i++) expect(windows[i].from).toBeGreaterThan(windows[i - 1].to);
    console.log(`rolling upgrade on the stand-in: ${windows.map((w) => `${w.a} ${w.from}→${w.to}`).join(", ")}; servers ${SERVERS.map((s) => `${s} ${nth(s, "install", 1).at}→${nth(s, "service-start", 1).at}`).join(", ")}`);
  });

  test("a change to the install script alone (as in a new release of this library) re-runs every install and restarts nothing", async () => {
    const kubectlWrites = () => events.s0.filter((e) => e.kind === "kubectl" && /^(cordon|uncordon|drain|label)/.test(e.text)).length;
    const before = { writes: kubectlWrites(), installs: Object.fromEntries(lab.hosts.map((x) => [x.name, events[x.name].filter((e) => e.kind === "install").length])) };
    // Another install program (no wireguard-tools step), the same version, installer and config.
    clusterStack({ version: BUMPED, installWireguardTools: false });
    const r = await tf.apply({ parallelism: 10 });
    expect(r.stdout).toMatch(/6 added, 0 changed, 6 destroyed/);
    await readEvents();
    // The hosts' fingerprints are unchanged: no installer run, no restart, anywhere.
    for (const x of lab.hosts) expect(events[x.name].filter((e) => e.kind === "install")).toHaveLength(before.installs[x.name]);
    // The stand-in installer is a file:// script, read on the host every time, so the rollout cannot
    // vouch for it and each agent is drained once more (label, cordon, drain, uncordon, unlabel).
    // The skip for an https installer runs in a real shell in test/rollout-scripts.test.ts.
    expect(kubectlWrites()).toBe(before.writes + 5 * AGENTS.length);
  });

  test("decommissioning a server drains it and deletes its Node on the first server, then uninstalls it", async () => {
    clusterStack({ version: BUMPED, decommission: ["s2"], installWireguardTools: false });
    await tf.apply({ parallelism: 10 });
    await readEvents();
    expect(kubectlAbout("s2", "drain").length).toBeGreaterThan(0);
    const del = events.s0.filter((e) => e.kind === "kubectl" && /^delete node s2\b/.test(e.text));
    expect(del).toHaveLength(1);
    const uninstall = nth("s2", "uninstall", 0);
    expect(uninstall.text).toContain("role=server");
    expect(uninstall.at).toBeGreaterThan(del[0].at);
    // The others were not touched.
    for (const x of ["s0", "s1", ...AGENTS]) expect(events[x].filter((e) => e.kind === "install")).toHaveLength(2);
  });
});
