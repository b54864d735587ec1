/**
 * The cluster's first stack (K3sServer + K3sAgents + PeerFirewall) end to end on real hosts, with
 * the real `terraform` binary: deploy, re-run, grow, decommission, upgrade the server, fail, destroy.
 *
 * Real: Terraform 1.11.4 running cdk.tf.json exactly as cdktf synthesized it (test/harness/
 * terraform-cli.ts; its planner, graph, provisioners, state), the hosts (network namespaces with
 * their own OpenSSH server, /etc, /var, /run …), SSH, sudo, ufw and iptables, the packets, our
 * rendered scripts, the kubeconfig fetch program.
 * NOT real:
 *  - the providers: hashicorp/random, local and null are stand-ins speaking Terraform's plugin
 *    protocol (test/standin-providers/; the Terraform registry cannot be reached here);
 *  - K3s. Its install script and binary cannot be downloaded here, so the hosts get a STAND-IN
 *    installer (test/harness/stand-in-k3s/) that records what it was given and writes the files K3s
 *    would write that our scripts read (a real CA, the admin kubeconfig, token files), serves the CA
 *    at /cacerts like K3s's supervisor, and verifies a joining agent's K10 token hash against it.
 */
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "fs";
import { join } from "path";
import { App, TerraformOutput, TerraformStack } from "cdktf";
import { K3sAgent, K3sNode, K3sServer, PeerFirewall } from "../lib";
import { leaks, startCmdlineSampler, CmdlineSampler } from "./harness/cmdline-sampler";
import { createLab, Lab, LabHost, LAYERS_DIR, PASSWORD_SUDO_USER, sshdAccepted } from "./harness/lab";
import { localHost, ProbeCase, ProbeHost, runMatrix, surprises } from "./harness/probe";
import { serveStandIn, STAND_IN_INSTALLER_URL, standInCounts, standInEvents, standInInstallEnvironments, standInServicePids } from "./harness/stand-in";
import { synthesizeIn, terraformBinary, TerraformCli, TfResult } from "./harness/terraform-cli";
import { applyJson, destroyJson, JsonRun, JsonRunOptions, stackAddresses, stateResources } from "./harness/terraform-json";

jest.setTimeout(600000);

const NET = "198.51.100";
const canRun = process.getuid?.() === 0 && ["ufw", "iptables", "socat", "sshd", "unshare", "nsenter", "ip", "openssl", "curl", "nc"]
  .every((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
// Skipped where the lab cannot run (not root, tools missing) — but never silently in CI. A missing
// `terraform` is not a reason to skip: the wrapper throws a message saying so, and every test fails.
if (!canRun && process.env.CI) throw new Error("the real-host E2E needs root and ufw, iptables, socat, sshd, unshare, nsenter, ip, openssl, curl, nc");
const describeReal = canRun ? describe : describe.skip;

const HOSTS = [
  { name: "server", address: `${NET}.10` },
  // Logs in as a passwordless-sudo user, not root.
  { name: "agent-a", address: `${NET}.11`, sudoUser: true },
  // Reachable over SSH only through the server (its sshd refuses everyone else).
  { name: "agent-b", address: `${NET}.12`, sshAllowFrom: [`${NET}.10`] },
  // Joins later, then leaves.
  { name: "agent-c", address: `${NET}.13` },
  // Not in the cluster.
  { name: "stranger", address: `${NET}.99` },
  // Fault hosts.
  { name: "down", address: `${NET}.20` },
  { name: "flaky", address: `${NET}.21` },
  { name: "pw", address: `${NET}.22` },
];

let lab: Lab;
let tf: TerraformCli;
let sampler: CmdlineSampler;
/** Every Terraform command's result (but `show`, whose state JSON holds the secrets by design). */
const tfRuns: TfResult[] = [];
/** Secrets read from the state while it had them, for the leak checks after destroy. */
const secrets = new Set<string>();
const h = (name: string): LabHost => lab.host(name);

interface Built {
  addr: (construct: string, kind: string) => string;
  addrs: (construct: string) => string[];
  /** The firewall step of a node. */
  firewall: (node: string) => string;
}

interface StackOptions {
  sshUser?: Record<string, string>;
  timeout?: Record<string, string>;
  /** Agents deployed with `decommission: true`. */
  decommission?: string[];
  serverVersion?: string;
}

/**
 * The stack a user writes for this cluster: a server, `agents`, a firewall over all of them, the
 * kubeconfig as an output. Synthesized into the same directory each time (Terraform's working
 * directory), with the state in the lab's directory.
 */
function clusterStack(agents: string[], opts: StackOptions = {}): Built {
  const app = new App({ outdir: join(lab.dir, "cdktf.out") }); // inside the lab: removed with it
  const stack = new TerraformStack(app, "cluster");
  // Every host key pinned, both hops for agent-b (behind the server as its bastion).
  const ssh = (x: LabHost) => ({
    user: opts.sshUser?.[x.name] ?? x.sshUser,
    privateKeyPath: lab.privateKeyPath,
    hostKey: x.hostKey,
    timeout: opts.timeout?.[x.name] ?? "20s",
  });
  const install = { scriptUrl: STAND_IN_INSTALLER_URL, readyTimeoutSeconds: 30 };
  const server = new K3sServer(stack, "server", {
    host: { address: h("server").address, ssh: ssh(h("server")) },
    install,
    version: opts.serverVersion,
    kubeconfigPath: join(lab.dir, "kubeconfig"),
  });
  const nodes: K3sNode[] = [server];
  for (const name of agents) {
    const x = h(name);
    const bastion = name === "agent-b" ? { host: h("server").address, hostKey: h("server").hostKey } : undefined;
    nodes.push(new K3sAgent(stack, name, {
      server, install, drainTimeoutSeconds: 20, decommission: opts.decommission?.includes(name),
      host: { address: x.address, ssh: { ...ssh(x), bastion } },
    }));
  }
  // rateLimitSsh: false — with ufw `limit` on SSH from the admin network, a deploy's own connections
  // (one per provisioner, Terraform's pattern, plus every bastion hop and the kubeconfig fetch)
  // exceed 6 per 30 s and are refused.
  new PeerFirewall(stack, "firewall", { nodes, adminCidrs: [`${lab.adminAddress}/32`], rateLimitSsh: false });
  new TerraformOutput(stack, "kubeconfig", { value: server.kubeconfig, sensitive: true });
  // cdktf's default local backend puts the state in the synthesizing process's cwd: the lab's dir.
  synthesizeIn(lab.dir, () => app.synth());
  const all = stackAddresses(stackDir());
  const addrs = (construct: string) => all.filter((a) => a.split(".")[1].startsWith(`${construct}_`) || a.split(".")[1].startsWith(`firewall_${construct}_`));
  const addr = (construct: string, kind: string) => {
    const m = all.filter((a) => a.split(".")[1].startsWith(`${construct}_${kind}_`));
    if (m.length !== 1) throw new Error(`no single resource ${construct}_${kind}_* (have ${all.join(", ")})`);
    return m[0];
  };
  const firewall = (node: string) => {
    const m = all.filter((a) => a.startsWith(`terraform_data.firewall_${node}_`));
    if (m.length !== 1) throw new Error(`no single firewall step for ${node} (have ${all.join(", ")})`);
    return m[0];
  };
  return { addr, addrs, firewall };
}

const stackDir = () => join(lab.dir, "cdktf.out", "stacks", "cluster");

async function apply(o: JsonRunOptions = {}): Promise<JsonRun> {
  const r = await applyJson(tf, { check: false, ...o });
  tfRuns.push(r.result);
  if (o.check !== false && !r.ok) throw new Error(`terraform apply failed:\n${r.errors.map((e) => `${e.summary}: ${e.detail}`).join("\n")}\n${r.result.stderr}`);
  return r;
}

/** `terraform plan -detailed-exitcode`: 0 = no changes, 2 = changes. */
async function planExitCode(): Promise<TfResult> {
  const r = await tf.plan({ detailedExitcode: true });
  tfRuns.push(r);
  return r;
}

async function configYaml(x: LabHost): Promise<string> {
  return x.run("cat /etc/rancher/k3s/config.yaml");
}

function yamlValue(yaml: string, key: string): string | undefined {
  const m = new RegExp(`^${key}: "?([^"\\n]*)"?$`, "m").exec(yaml);
  return m?.[1];
}

/** Addresses planned with an action other than no-op or read. */
function changes(r: JsonRun): string[] {
  return Object.entries(r.plan).filter(([, a]) => a !== "noop" && a !== "read").map(([addr, a]) => `${addr}: ${a}`);
}

async function tokens(b: Built): Promise<{ serverToken: string; agentToken: string }> {
  const st = await stateResources(tf);
  const serverToken = String(st[b.addr("server", "server-token")].values.result);
  const agentToken = String(st[b.addr("server", "agent-token")].values.result);
  secrets.add(serverToken);
  secrets.add(agentToken);
  return { serverToken, agentToken };
}

describeReal("the cluster's first stack on real hosts with real Terraform (K3s and providers are stand-ins)", () => {
  const members = ["server", "agent-a", "agent-b"];
  let admin: ProbeHost;

  beforeAll(async () => {
    // First, before any host exists: throws "the tests need the terraform binary …" without it.
    terraformBinary();
    sampler = startCmdlineSampler(40);
    lab = await createLab({ hosts: HOSTS });
    serveStandIn(lab);
    admin = localHost("admin", lab.adminAddress);
    clusterStack(["agent-a", "agent-b"]);
    tf = new TerraformCli(stackDir());
    tfRuns.push(await tf.init());
  });

  afterAll(async () => {
    sampler?.stop();
    await lab?.cleanup();
  });

  let fresh: JsonRun;

  test("a fresh deploy succeeds, firewall first, in dependency order", async () => {
    const stack = clusterStack(["agent-a", "agent-b"]);
    const sshdBefore = Object.fromEntries(lab.hosts.map((x) => [x.name, sshdAccepted(x).length]));
    fresh = await apply();
    expect(Object.keys(fresh.plan).length).toBeGreaterThan(10);
    expect(Object.entries(fresh.plan).filter(([, a]) => a !== "create" && a !== "read")).toEqual([]);
    const done = (addr: string) => fresh.completed.find((c) => c.address === addr);
    const started = (addr: string) => fresh.events.find((e) => e.type === "apply_start" && e.address === addr)!.at;
    for (const name of members) {
      const x = h(name);
      const ev = await standInEvents(x);
      expect(ev.filter((e) => e.kind === "install")).toHaveLength(1);
      expect(ev.filter((e) => e.kind === "service-start")).toHaveLength(1);
      // The firewall step on this host had finished (Terraform's apply_complete) before the installer ran.
      const fw = done(stack.firewall(name));
      expect(fw).toBeDefined();
      const installAt = ev.find((e) => e.kind === "install")!.at;
      expect(fw!.at).toBeLessThanOrEqual(installAt);
      expect(await x.run("ufw status")).toMatch(/^Status: active$/m);
    }
    // The server's install finished before any agent's began.
    const serverDone = done(stack.addr("server", "install"))!.at;
    for (const a of ["agent-a", "agent-b"]) expect(started(stack.addr(a, "install"))).toBeGreaterThanOrEqual(serverDone);
    // Who logged in where, from each host's own sshd log: agent-a only as the sudo user, agent-b
    // only from the server (the bastion), the server from this machine.
    const logins = (name: string) => sshdAccepted(h(name)).slice(sshdBefore[name]);
    expect(logins("agent-a").length).toBeGreaterThanOrEqual(3);
    expect(new Set(logins("agent-a").map((l) => l.user))).toEqual(new Set(["deployer"]));
    expect(logins("agent-b").length).toBeGreaterThanOrEqual(3);
    expect(new Set(logins("agent-b").map((l) => `${l.user}@from ${l.from}`))).toEqual(new Set([`root@from ${NET}.10`]));
    expect(logins("server").filter((l) => l.from === lab.adminAddress).length).toBeGreaterThanOrEqual(4);
    expect(lab.ssh(h("agent-b"), "true").code).not.toBe(0); // direct SSH is refused
    // Nothing landed on the stranger.
    expect((await h("stranger").exec("test -e /etc/rancher || test -e /var/lib/cdktf-k3s-kilo")).code).not.toBe(0);
  });

  test("a plan right after the apply has no changes (exit code 0)", async () => {
    const r = await planExitCode();
    expect(r.stdout).toMatch(/No changes/);
    expect(r.code).toBe(0);
  });

  test("config.yaml is 0600 root-owned with the right keys; staging is empty", async () => {
    const { serverToken, agentToken } = await tokens(clusterStack(["agent-a", "agent-b"]));
    for (const name of members) {
      expect(await h(name).run("stat -c '%a %U:%G' /etc/rancher/k3s/config.yaml")).toBe("600 root:root\n");
      expect(await h(name).run("stat -c '%a' /var/lib/cdktf-k3s-kilo/staging")).toBe("700\n");
      expect(await h(name).run("ls -A /var/lib/cdktf-k3s-kilo/staging")).toBe("");
    }
    const s = await configYaml(h("server"));
    expect(yamlValue(s, "token")).toBe(serverToken);
    expect(yamlValue(s, "agent-token")).toBe(agentToken);
    expect(yamlValue(s, "flannel-backend")).toBe("none");
    expect(s).not.toMatch(/disable-network-policy/);
    expect(s).toMatch(/^secrets-encryption: true$/m);
    expect(yamlValue(s, "write-kubeconfig-mode")).toBe("0600");
    expect(yamlValue(s, "node-name")).toBe("server");
    expect(s).toMatch(new RegExp(`^tls-san:\\n  - "${NET}\\.10"$`, "m"));
    for (const a of ["agent-a", "agent-b"]) {
      const y = await configYaml(h(a));
      expect(yamlValue(y, "server")).toBe(`https://${NET}.10:6443`);
      expect(yamlValue(y, "node-name")).toBe(a);
      expect(y).not.toMatch(/^agent-token:/m);
      expect(y).not.toMatch(/flannel-backend/);
    }
  });

  test("agents hold the agent token in K10<sha256 of the server's CA>:: form, and nothing more", async () => {
    const ca = await h("server").run("cat /var/lib/rancher/k3s/server/tls/server-ca.crt");
    const caHash = createHash("sha256").update(ca).digest("hex");
    const { serverToken, agentToken } = await tokens(clusterStack(["agent-a", "agent-b"]));
    const kubeconfig = readFileSync(join(lab.dir, "kubeconfig"), "utf8");
    const clientKey = /client-key-data: (\S+)/.exec(kubeconfig)![1];
    for (const a of ["agent-a", "agent-b"]) {
      const y = await configYaml(h(a));
      expect(yamlValue(y, "token")).toBe(`K10${caHash}::node:${agentToken}`);
      // The stand-in agent fetched /cacerts from the server and checked the hash itself.
      const ev = await standInEvents(h(a));
      expect(ev.find((e) => e.kind === "service-start")!.text).toContain(`ca-hash-verified=${caHash}`);
      expect(await h(a).run("test -s /var/lib/rancher/k3s/agent/kubelet.kubeconfig && echo yes")).toBe("yes\n");
      // Neither the server token nor admin credentials anywhere on the agent.
      // Every file written on the host: its copy-on-write layers, /tmp and /run.
      const dirs = `${LAYERS_DIR} /tmp /run`;
      // (Patterns on stdin: a secret on grep's command line would itself be a leak.)
      const grep = await h(a).exec(`grep -rlF -f - ${dirs} 2>/dev/null | grep -v '^/run/cdktf-lab/' || true`,
        { input: [serverToken, clientKey.slice(0, 40)].join("\n") + "\n" });
      expect((await h(a).run(`find ${LAYERS_DIR}/var/upper/lib/rancher/k3s/agent -type f | wc -l`)).trim()).not.toBe("0");
      expect((await h(a).run(`grep -rlF -f - ${LAYERS_DIR}/etc/upper/rancher`, { input: `${agentToken}\n` })).trim()).toBe(`${LAYERS_DIR}/etc/upper/rancher/k3s/config.yaml`);
      expect(grep.stdout).toBe("");
      expect((await h(a).exec("test -e /etc/rancher/k3s/k3s.yaml")).code).not.toBe(0);
    }
  });

  test("the kubeconfig fetched back points at the server's public address and works with its CA", async () => {
    const path = join(lab.dir, "kubeconfig");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const kc = readFileSync(path, "utf8");
    secrets.add(/client-key-data: (\S+)/.exec(kc)![1]);
    expect(kc).toMatch(new RegExp(`server: "?https://${NET.replace(/\./g, "\\.")}\\.10:6443`));
    expect(kc).not.toContain("127.0.0.1");
    const out = await tf.outputJson();
    expect(out.kubeconfig.sensitive).toBe(true);
    expect(out.kubeconfig.value).toBe(kc);
    const ca = Buffer.from(/certificate-authority-data: (\S+)/.exec(kc)![1], "base64").toString();
    expect(ca).toBe(await h("server").run("cat /var/lib/rancher/k3s/server/tls/server-ca.crt"));
    // The client certificate is signed by that CA.
    const cert = Buffer.from(/client-certificate-data: (\S+)/.exec(kc)![1], "base64").toString();
    const dir = join(lab.dir, "verify");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "ca.crt"), ca);
    writeFileSync(join(dir, "client.crt"), cert);
    const v = spawnSync("openssl", ["verify", "-CAfile", join(dir, "ca.crt"), join(dir, "client.crt")], { encoding: "utf8" });
    expect(v.stdout).toMatch(/OK/);
  });

  test("the firewall admits exactly the cluster's peers (real packets)", async () => {
    // One matrix per target, in parallel (listeners on different hosts never collide).
    const cases = publicMatrix(members.map(h), [h("stranger")], admin);
    const results = (await Promise.all(members.map((n) => runMatrix(cases.filter((c) => c.target.name === n))))).flat();
    expect(results.length).toBeGreaterThan(30);
    expect(surprises(results)).toEqual([]);
    // 6443 on the server is the stand-in's /cacerts listener: reachable from peers and admin only.
    for (const [from, ok] of [["agent-a", true], ["stranger", false]] as const) {
      const r = await h(from).exec(`curl -sk --max-time 3 https://${NET}.10:6443/cacerts | head -c 27`);
      expect(r.stdout === "-----BEGIN CERTIFICATE-----").toBe(ok);
    }
  });

  test("applying the same stack again runs no provisioner and restarts nothing; firewalls unchanged", async () => {
    const before = await Promise.all(members.map(async (n) => ({
      counts: await standInCounts(h(n)), pids: await standInServicePids(h(n)), ufw: await h(n).run("ufw show added"),
    })));
    clusterStack(["agent-a", "agent-b"]);
    const r = await apply();
    expect(changes(r)).toEqual([]);
    expect(r.provisioned).toEqual([]);
    // Terraform applied nothing: its only steps are the kubeconfig fetch's data sources, read again.
    const steps = r.events.filter((e) => e.type === "apply_start").map((e) => e.address!);
    expect(steps).toContainEqual(expect.stringMatching(/^data\.local_command\.server_credentials_/));
    expect(steps.filter((a) => !a.startsWith("data."))).toEqual([]);
    expect(r.events.find((e) => e.type === "change_summary")!.raw.changes).toMatchObject({ add: 0, change: 0, remove: 0 });
    const after = await Promise.all(members.map(async (n) => ({
      counts: await standInCounts(h(n)), pids: await standInServicePids(h(n)), ufw: await h(n).run("ufw show added"),
    })));
    expect(after).toEqual(before);
    for (const b of before) expect(b.pids).toHaveLength(1);
  });

  test("adding an agent installs it and converges every firewall; no other install runs", async () => {
    const before = await Promise.all(members.map((n) => standInCounts(h(n))));
    const stack = clusterStack(["agent-a", "agent-b", "agent-c"]);
    const r = await apply();
    expect(r.provisioned.filter((a) => /_install_/.test(a))).toEqual([stack.addr("agent-c", "install")]);
    expect(await standInCounts(h("agent-c"))).toEqual({ installs: 1, starts: 1, uninstalls: 0 });
    expect(await Promise.all(members.map((n) => standInCounts(h(n))))).toEqual(before);
    // Every node's firewall step re-ran (replaced: its rule set changed) and now admits agent-c.
    const fw = r.provisioned.filter((a) => a.startsWith("terraform_data.firewall_")).sort();
    expect(fw).toEqual([...members, "agent-c"].map((n) => stack.firewall(n)).sort());
    const results = await runMatrix([
      { source: h("agent-c"), target: h("server"), port: 10250, proto: "tcp", expect: "open" },
      { source: h("agent-c"), target: h("agent-a"), port: 51820, proto: "udp", expect: "open" },
    ]);
    expect(surprises(results)).toEqual([]);
  });

  test("decommission: true drains, deletes and uninstalls it and every firewall drops it; then deleting the construct changes nothing", async () => {
    const before = await Promise.all(members.map((n) => standInCounts(h(n))));
    const stack = clusterStack(["agent-a", "agent-b", "agent-c"], { decommission: ["agent-c"] });
    const r = await apply();
    // Its two resources (count = 0 now) are destroyed with their destroy-time provisioners.
    for (const kind of ["membership", "install"]) {
      const base = stack.addr("agent-c", kind);
      expect(Object.entries(r.plan).filter(([a]) => a === base || a.startsWith(`${base}[`)).map(([, act]) => act)).toEqual(["delete"]);
    }
    expect(r.events.filter((e) => e.type === "provision_start" && e.address!.startsWith(stack.addr("agent-c", "membership"))).length).toBe(2);
    expect(r.plan[stack.firewall("server")]).toBe("replace");
    expect(r.provisioned.filter((a) => /_install_/.test(a))).toEqual([]);
    const serverEvents = (await standInEvents(h("server"))).filter((e) => e.kind === "kubectl").map((e) => e.text);
    expect(serverEvents).toContain("get node agent-c");
    expect(serverEvents.some((t) => t.startsWith("drain agent-c --ignore-daemonsets"))).toBe(true);
    expect(serverEvents.some((t) => t.startsWith("delete node agent-c"))).toBe(true);
    expect((await standInCounts(h("agent-c"))).uninstalls).toBe(1);
    expect(await h("agent-c").run("ls /usr/local/bin/k3s /var/lib/rancher/k3s /etc/rancher/k3s 2>&1 || true")).not.toMatch(/^\/(usr|var|etc)\S*$/m);
    expect(await standInServicePids(h("agent-c"))).toEqual([]);
    // No other node was reinstalled; every remaining firewall dropped agent-c.
    expect(await Promise.all(members.map((n) => standInCounts(h(n))))).toEqual(before);
    for (const n of members) expect(await h(n).run("ufw show added")).not.toContain(h("agent-c").address);
    const results = await runMatrix([
      { source: h("agent-c"), target: h("server"), port: 10250, proto: "tcp", expect: "blocked" },
      { source: h("agent-c"), target: h("agent-a"), port: 51820, proto: "udp", expect: "blocked" },
      { source: h("agent-a"), target: h("server"), port: 10250, proto: "tcp", expect: "open" },
    ]);
    expect(surprises(results)).toEqual([]);

    // Then the construct goes: nothing left to do.
    clusterStack(["agent-a", "agent-b"]);
    const p = await planExitCode();
    expect(p.code).toBe(0);
  });

  test("bumping the server's K3s version replaces only the server's install; no agent installer runs", async () => {
    const agents = ["agent-a", "agent-b"];
    const before = await Promise.all(agents.map(async (n) => ({ counts: await standInCounts(h(n)), pids: await standInServicePids(h(n)) })));
    const serverBefore = await standInCounts(h("server"));
    const stack = clusterStack(agents, { serverVersion: "v1.33.5+k3s1" });
    const r = await apply();
    const replaced = Object.entries(r.plan).filter(([a, act]) => act === "replace" && a.startsWith("terraform_data.")).map(([a]) => a);
    expect(replaced).toEqual([stack.addr("server", "install")]);
    expect(r.provisioned).toEqual([stack.addr("server", "install")]);
    expect((await standInEvents(h("server"))).filter((e) => e.kind === "install").pop()!.text).toContain("version=v1.33.5+k3s1");
    expect((await standInCounts(h("server"))).installs).toBe(serverBefore.installs + 1);
    const after = await Promise.all(agents.map(async (n) => ({ counts: await standInCounts(h(n)), pids: await standInServicePids(h(n)) })));
    expect(after).toEqual(before);
    expect((await planExitCode()).code).toBe(0);
  });

  describe("faults (one apply with three faulty agents, then the next run)", () => {
    const faulty = ["agent-a", "agent-b", "down", "flaky", "pw"];
    const opts: StackOptions = { serverVersion: "v1.33.5+k3s1", timeout: { down: "3s" }, sshUser: { pw: PASSWORD_SUDO_USER } };
    let stack: Built;
    let r1: JsonRun;
    let before: Array<{ installs: number; starts: number; uninstalls: number }>;
    const out = (r: JsonRun, addrs: string[]) => r.events.filter((e) => e.type === "provision_progress" && addrs.includes(e.address!)).map((e) => e.output).join("\n");
    const diag = (r: JsonRun, addrs: string[]) => r.errors.filter((e) => e.address && addrs.includes(e.address)).map((e) => `${e.summary}: ${e.detail}`);

    beforeAll(async () => {
      before = await Promise.all(members.map((n) => standInCounts(h(n))));
      await h("down").stopSshd();
      // The stand-in installer fails once on this host, midway (binary in place, service not started).
      await h("flaky").run("mkdir -p /var/lib/k3s-stand-in && touch /var/lib/k3s-stand-in/fail-once");
      stack = clusterStack(faulty, opts);
      r1 = await apply({ check: false });
    });

    afterAll(async () => {
      // Back to the two-agent cluster, the documented way for down and flaky (decommission, then
      // delete the construct); pw's cleanup would need sudo too, so it is forgotten (`state rm`).
      await h("down").startSshd();
      if (!stack) return;
      const st = await stateResources(tf);
      const pw = stack.addrs("pw").filter((a) => st[a]);
      if (pw.length) tfRuns.push(await tf.run(["state", "rm", ...pw]));
      clusterStack(["agent-a", "agent-b", "down", "flaky"], { ...opts, decommission: ["down", "flaky"] });
      await apply();
      clusterStack(["agent-a", "agent-b"], opts);
      await apply();
    });

    test("the apply fails, and only the faulty agents' resources fail", () => {
      expect(r1.ok).toBe(false);
      const faultyAddrs = [...stack.addrs("down"), ...stack.addrs("flaky"), ...stack.addrs("pw")];
      const errored = r1.events.filter((e) => e.type === "apply_errored").map((e) => e.address!);
      expect(errored.filter((a) => !faultyAddrs.includes(a))).toEqual([]);
      expect(errored.length).toBeGreaterThanOrEqual(3);
      expect(r1.errors.filter((e) => !e.address || !faultyAddrs.includes(e.address))).toEqual([]);
    });

    test("a host whose sshd is down fails within its connection timeout, naming the host", async () => {
      const addrs = stack.addrs("down");
      const errs = diag(r1, addrs);
      expect(errs.length).toBeGreaterThan(0);
      for (const e of errs) expect(e).toContain(`${h("down").address}:22`);
      // Gave up after the 3 s timeout (plus slack for Terraform's retry interval), not after minutes.
      for (const e of r1.events.filter((x) => x.type === "apply_errored" && addrs.includes(x.address!))) {
        expect(e.raw.hook.elapsed_seconds).toBeLessThan(3 + 10);
      }
      // Its install depends on its firewall step, which failed: never started.
      expect(r1.events.filter((e) => e.type === "apply_start" && e.address === stack.addr("down", "install"))).toEqual([]);
      expect((await stateResources(tf))[stack.addr("down", "install")]).toBeUndefined();
    });

    test("a script that fails midway fails its resource (no silent success)", async () => {
      const addrs = stack.addrs("flaky");
      expect([...new Set(r1.errors.filter((e) => e.address && addrs.includes(e.address)).map((e) => e.address))]).toEqual([stack.addr("flaky", "install")]);
      expect(diag(r1, addrs).join("\n")).toMatch(/Process exited with status 1/);
      const output = out(r1, [stack.addr("flaky", "install")]);
      expect(output).toMatch(/injected failure midway/);
      expect(output).toMatch(/the K3s install script failed/);
      expect((await stateResources(tf))[stack.addr("flaky", "install")].tainted).toBe(true);
      // Not recorded as installed: the next run will try again in full.
      expect((await h("flaky").exec("test -e /var/lib/cdktf-k3s-kilo/k3s-agent.sha256")).code).not.toBe(0);
      expect(await standInCounts(h("flaky"))).toEqual({ installs: 1, starts: 0, uninstalls: 0 });
    });

    test("a sudo user that needs a password fails with a message that says so", async () => {
      const addrs = stack.addrs("pw");
      expect(diag(r1, addrs).length).toBeGreaterThan(0);
      expect(out(r1, addrs)).toContain(`user ${PASSWORD_SUDO_USER} on pw cannot use sudo without a password`);
      // sudo's own complaint (it tried to prompt) never reaches the user in place of ours.
      expect(out(r1, addrs)).not.toMatch(/a terminal is required|a password is required/);
      expect((await h("pw").exec("test -e /etc/rancher/k3s/config.yaml")).code).not.toBe(0);
    });

    test("the next run converges the failed install, and re-runs nothing else", async () => {
      stack = clusterStack(faulty, opts);
      const r2 = await apply({ check: false });
      expect(r2.plan[stack.addr("flaky", "install")]).toBe("replace");
      expect(r2.events.filter((e) => e.type === "apply_errored" && stack.addrs("flaky").includes(e.address!))).toEqual([]);
      expect(r2.completed.map((c) => c.address)).toContain(stack.addr("flaky", "install"));
      expect(await standInCounts(h("flaky"))).toEqual({ installs: 2, starts: 1, uninstalls: 0 });
      expect(await h("flaky").run("cat /var/lib/cdktf-k3s-kilo/k3s-agent.sha256")).toMatch(/^[0-9a-f]{64}\n$/);
      // The cluster members' installs did not run again.
      expect(await Promise.all(members.map((n) => standInCounts(h(n))))).toEqual(before);
      expect(r2.provisioned.filter((a) => /_install_/.test(a))).toEqual([stack.addr("flaky", "install")]);
    });
  });

  test("terraform destroy drains and uninstalls every agent, then the server, and leaves the hosts clean", async () => {
    const stack = clusterStack(["agent-a", "agent-b"], { serverVersion: "v1.33.5+k3s1" });
    // What Kilo would have left on the hosts (the stand-in K3s runs no Kilo): its interface, an
    // iptables chain with a jump to it, its state dir and CNI config. The cleanup must remove them.
    const kiloLeftovers = "ip link add kilo0 type veth peer name kilo0-peer && iptables -N KILO-NAT && iptables -A FORWARD -j KILO-NAT" +
      " && mkdir -p /var/lib/kilo /etc/cni/net.d && touch /var/lib/kilo/key /etc/cni/net.d/10-kilo.conflist";
    for (const n of members) await h(n).run(kiloLeftovers);
    // The kubeconfig fetch's copy of the admin credentials, on the deploying machine.
    const secretsDir = join(stackDir(), ".cdktf-k3s-kilo-secrets");
    expect(readdirSync(secretsDir).length).toBe(1);
    const r = await destroyJson(tf, { check: false });
    tfRuns.push(r.result);
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(true);
    expect(Object.keys(await stateResources(tf))).toEqual([]);
    const kubectl = (await standInEvents(h("server"))).filter((e) => e.kind === "kubectl").map((e) => e.text);
    for (const a of ["agent-a", "agent-b"]) {
      expect(kubectl.some((t) => t.startsWith(`drain ${a} `))).toBe(true);
      expect(kubectl.some((t) => t.startsWith(`delete node ${a} `))).toBe(true);
    }
    for (const n of members) {
      expect((await standInCounts(h(n))).uninstalls).toBe(1);
      expect(await standInServicePids(h(n))).toEqual([]);
      expect((await h(n).exec("test -e /usr/local/bin/k3s || test -e /etc/rancher/k3s/config.yaml || test -e /var/lib/rancher/k3s")).code).not.toBe(0);
      expect((await h(n).exec("ip link show kilo0")).code).not.toBe(0);
      expect(await h(n).run("iptables-save | grep -c KILO- || true")).toBe("0\n");
      expect((await h(n).exec("test -e /var/lib/kilo || test -e /etc/cni/net.d/10-kilo.conflist")).code).not.toBe(0);
      expect(await h(n).run("ls /var/lib/cdktf-k3s-kilo/*.sha256 2>/dev/null || true")).toBe("");
      // Our state directory (fingerprints, kept installer, rollout records, staging) goes with K3s.
      expect((await h(n).exec("test -e /var/lib/cdktf-k3s-kilo")).code).not.toBe(0);
      // The firewall stays, on purpose: a destroyed cluster's host is not left open.
      expect(await h(n).run("grep '^ENABLED=' /etc/ufw/ufw.conf")).toBe("ENABLED=yes\n");
      expect(await h(n).run("ufw show added")).toMatch(/comment 'cdktf-k3s-kilo:[0-9a-f]{16}'/);
    }
    // No admin credentials linger on the deploying machine.
    expect(existsSync(secretsDir)).toBe(false);
    // The server goes last: every agent's cleanup (which drains on the server) finished before it began.
    const serverStart = r.events.find((e) => e.type === "apply_start" && e.address === stack.addr("server", "membership"))!.at;
    for (const a of ["agent-a", "agent-b"]) {
      const d = r.completed.find((x) => x.address === stack.addr(a, "membership"))!;
      expect(d.action).toBe("delete");
      expect(d.at).toBeLessThanOrEqual(serverStart);
    }
    // Two destroy-time steps per agent (drain on the server, uninstall on the agent), one on the server,
    // then one on the deploying machine: removing the fetched admin credentials, after the uninstall.
    const steps = r.events.filter((e) => e.type === "provision_start" && /_membership_/.test(e.address!));
    expect(steps.map((e) => e.provisioner).sort()).toEqual(["local-exec", ...Array(5).fill("remote-exec")]);
    const serverSteps = steps.filter((e) => e.address === stack.addr("server", "membership")).map((e) => e.provisioner);
    expect(serverSteps).toEqual(["remote-exec", "local-exec"]);
    // Terraform's own backup of the state before the destroy stays (it is Terraform's, not ours): it
    // holds that state's secrets, with the mode the umask gives, as the README's Destroy section says.
    const backup = `${tf.statePath!}.backup`;
    expect([...secrets].some((x) => readFileSync(backup, "utf8").includes(x))).toBe(true);
    expect(statSync(backup).mode & 0o777).toBe(0o666 & ~process.umask());
    expect(existsSync(join(lab.dir, "kubeconfig"))).toBe(false);
  });

  test("no token or private key ever appeared in a process's command line, in Terraform's output or in the installer's environment", async () => {
    sampler.stop();
    expect(sampler.sweeps()).toBeGreaterThan(100);
    // Sanity: the sampler does see Terraform and the provisioners' processes.
    expect([...sampler.seen].some((l) => /terraform (apply|destroy)/.test(l))).toBe(true);
    expect([...sampler.seen].some((l) => l.includes("/tmp/terraform_") || l.includes("k3s-install.sh"))).toBe(true);
    const keyLines = readFileSync(lab.privateKeyPath, "utf8").split("\n").filter((l) => l && !l.startsWith("-----"));
    expect(secrets.size).toBeGreaterThanOrEqual(3); // both tokens, the admin client key
    for (const s of secrets) expect(s.length).toBeGreaterThanOrEqual(16);
    const all = [...secrets, ...keyLines];
    expect(leaks(sampler.seen, all)).toEqual([]);
    // Everything Terraform printed, every command (init, plan, apply, destroy, output -json aside:
    // asking for a sensitive output is the one way to see it).
    expect(tfRuns.length).toBeGreaterThan(8);
    const printed = tfRuns.filter((r) => r.args[0] !== "output").flatMap((r) => [r.stdout, r.stderr]);
    expect(printed.join("").length).toBeGreaterThan(10000);
    expect(leaks(printed, all)).toEqual([]);
    for (const n of [...members, "flaky"]) {
      expect(leaks(await standInInstallEnvironments(h(n)), all)).toEqual([]);
    }
  });
});

/**
 * The public-address matrix on the deployed cluster: peers reach 51820/udp and 10250/tcp, the admin
 * (and agent-b's bastion) reaches SSH, agents' 6443 stays closed. (The full matrix, 1107, 2379 and
 * Kilo's interfaces, is test/firewall-hosts.test.ts's.)
 */
function publicMatrix(nodes: LabHost[], outsiders: LabHost[], admin: ProbeHost): ProbeCase[] {
  const cases: ProbeCase[] = [];
  for (const target of nodes) {
    const sources: Array<[ProbeHost, "peer" | "outsider" | "admin"]> = [
      ...nodes.filter((x) => x !== target).map((x): [ProbeHost, "peer"] => [x, "peer"]),
      ...outsiders.map((x): [ProbeHost, "outsider"] => [x, "outsider"]),
      [admin, "admin"],
    ];
    for (const [source, kind] of sources) {
      const open = (ok: boolean) => (ok ? "open" : "blocked") as "open" | "blocked";
      const bastionHop = target.name === "agent-b" && source.name === "server";
      cases.push({ source, target, port: 22, proto: "tcp", ssh: true, expect: open(kind === "admin" || bastionHop) });
      cases.push({ source, target, port: 51820, proto: "udp", expect: open(kind === "peer") });
      cases.push({ source, target, port: 10250, proto: "tcp", expect: open(kind === "peer") });
      if (target.name !== "server") cases.push({ source, target, port: 6443, proto: "tcp", expect: "blocked" });
    }
  }
  return cases;
}
