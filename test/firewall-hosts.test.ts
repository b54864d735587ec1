/**
 * PeerFirewall on real hosts with real packets.
 *
 * Four throwaway hosts from the lab harness (network namespaces on one bridge, each with its own
 * sshd, /etc and /run): a server, two agents (one logging in as a passwordless-sudo user) and a
 * stranger that is not in the cluster. The real `terraform` (test/harness/terraform-cli.ts, with the
 * stand-in null/random/local providers of test/standin-providers/) applies the synthesized stack's
 * firewall steps over SSH to real ufw/iptables, then real TCP/UDP packets are sent between every
 * pair to show each rule lets in what it should and nothing else.
 *
 * Only the firewall steps of the stack are applied here, with Terraform's own `-target` (the JSON
 * is run as synthesized): the K3s installs that wait for them are the e2e's (test/e2e-cluster).
 * Kilo's
 * interfaces are stand-ins: kilo0 and kube-bridge are veth links with Kilo's names and addresses
 * in a pod and a "mesh" namespace; ufw matches interfaces by name, so the rules are the real ones.
 */
import { spawn, spawnSync, ChildProcess } from "child_process";
import { randomBytes } from "crypto";
import { join } from "path";
import { App, TerraformStack } from "cdktf";
import { K3sAgent, K3sServer, PeerFirewall, PeerFirewallProps } from "../lib";
import { createLab, Lab, LabHost } from "./harness/lab";
import { labHost, localHost, netnsHost, ProbeCase, ProbeHost, runMatrix, sshBanner, surprises } from "./harness/probe";
import { synthesizeIn, terraformBinary, TerraformCli } from "./harness/terraform-cli";
import { applyJson, JsonRun, stackAddresses } from "./harness/terraform-json";

jest.setTimeout(600000);

const NET = "203.0.113";
const canRun = process.getuid?.() === 0 && ["ufw", "iptables", "socat", "sshd", "unshare", "ip"]
  .every((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
const describeReal = canRun ? describe : describe.skip;

let lab: Lab;
let tf: TerraformCli;
/** Every apply's parsed output. */
const runs: JsonRun[] = [];
let server: LabHost, agent1: LabHost, agent2: LabHost, stranger: LabHost;
let admin: ProbeHost;
/** Probe ends for the lab hosts, by name. */
const P: Record<string, ProbeHost> = {};
/** Namespaces this file creates itself (besides the lab's): removed by name in afterAll. */
const extraNetns: string[] = [];
const id = randomBytes(3).toString("hex");
const podNs = `cdktf-fw-${id}-pod`;
const meshNs = `cdktf-fw-${id}-mesh`;
let pod: ProbeHost, mesh: ProbeHost;

/**
 * The stack as a user writes it, with `agents` as the cluster's agents, synthesized into the same
 * directory each time (the state goes to the lab's directory). Returns its firewall steps by node.
 */
function firewallStack(agents: LabHost[], fw: Partial<PeerFirewallProps> = {}): Record<string, string> {
  const app = new App({ outdir: join(lab.dir, "cdktf.out") });
  const stack = new TerraformStack(app, "cluster");
  const ssh = (h: LabHost) => ({ user: h.sshUser, privateKeyPath: lab.privateKeyPath, hostKey: h.hostKey, timeout: "1m" });
  const k3sServer = new K3sServer(stack, "server", { host: { address: server.address, ssh: ssh(server) }, kubeconfigPath: join(lab.dir, "kubeconfig") });
  const k3sAgents = agents.map((a) => new K3sAgent(stack, a.name, { server: k3sServer, host: { address: a.address, ssh: ssh(a) } }));
  new PeerFirewall(stack, "firewall", { nodes: [k3sServer, ...k3sAgents], adminCidrs: [`${lab.adminAddress}/32`], rateLimitSsh: true, ...fw });
  synthesizeIn(lab.dir, () => app.synth());
  const steps: Record<string, string> = {};
  for (const a of stackAddresses(stackDir())) {
    const m = /^terraform_data\.firewall_(.+)_[0-9A-F]{8}$/.exec(a);
    if (m) steps[m[1]] = a;
  }
  return steps;
}

const stackDir = () => join(lab.dir, "cdktf.out", "stacks", "cluster");

/** Apply the firewall steps only (Terraform's -target), plus `alsoTarget` (e.g. a step left behind). */
async function applyFirewalls(steps: Record<string, string>, o: { alsoTarget?: string[]; replace?: string[] } = {}): Promise<JsonRun> {
  const r = await applyJson(tf, { targets: [...Object.values(steps), ...(o.alsoTarget ?? [])], replace: o.replace, check: false });
  runs.push(r);
  if (!r.ok) throw new Error(`terraform apply failed:\n${r.errors.map((e) => `${e.summary}: ${e.detail}`).join("\n")}\n${r.result.stderr}`);
  return r;
}

/**
 * ufw's `limit` refuses a source's 6th new SSH connection within 30 seconds. Terraform makes one
 * connection per provisioner (one per firewall step here), the tests' own SSH sessions add to
 * it, so between applies from the admin address the test lets the window pass.
 */
const quietSsh = () => new Promise((r) => setTimeout(r, 31000));

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 15000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** What "the firewall" is on a host: ufw's view and the filter table, without counters. */
async function snapshot(h: LabHost): Promise<string> {
  return h.run("ufw status verbose; ufw show added; iptables-save -t filter | grep -v '^[#:]'; ip6tables-save -t filter | grep -v '^[#:]'");
}

/** What the firewall step of `node` printed, in every apply so far (Terraform's provisioner output). */
function firewallLogs(node: string, only?: JsonRun[]): string {
  return (only ?? runs).flatMap((r) => r.events)
    .filter((e) => e.type === "provision_progress" && new RegExp(`^terraform_data\\.firewall_${node}_[0-9A-F]{8}$`).test(e.address!))
    .map((e) => e.output).join("\n");
}

/** The public-address matrix for the cluster `members` (the rest of the lab are outsiders). */
function publicMatrix(members: LabHost[]): ProbeCase[] {
  const all = [server, agent1, agent2, stranger];
  const cases: ProbeCase[] = [];
  for (const t of members) {
    const target = P[t.name];
    const isServer = t === server;
    const sources: Array<[ProbeHost, "peer" | "outsider" | "admin"]> = [
      ...all.filter((h) => h !== t).map((h): [ProbeHost, "peer" | "outsider"] => [P[h.name], members.includes(h) ? "peer" : "outsider"]),
      [admin, "admin"],
    ];
    for (const [source, kind] of sources) {
      const open = (ok: boolean) => (ok ? "open" : "blocked") as "open" | "blocked";
      cases.push({ source, target, port: 22, proto: "tcp", ssh: true, expect: open(kind === "admin") });
      cases.push({ source, target, port: 51820, proto: "udp", expect: open(kind === "peer") });
      cases.push({ source, target, port: 10250, proto: "tcp", expect: open(kind === "peer") });
      cases.push({ source, target, port: 6443, proto: "tcp", expect: open(isServer && kind !== "outsider") });
      cases.push({ source, target, port: 1107, proto: "tcp", expect: "blocked" });
      cases.push({ source, target, port: 2379, proto: "tcp", expect: "blocked" });
    }
  }
  return cases;
}

/** Traffic on Kilo's interfaces of the server: to the host and forwarded between them. */
function kiloMatrix(): ProbeCase[] {
  return [
    // Pods reach their own host (the kubelet, the API through a service, Kilo's metrics).
    { source: pod, target: P["server"], address: "10.42.0.1", port: 10250, proto: "tcp", expect: "open" },
    { source: pod, target: P["server"], address: "10.42.0.1", port: 1107, proto: "tcp", expect: "open" },
    // Other nodes' mesh addresses and pods reach the host through kilo0 ...
    { source: mesh, target: P["server"], address: "10.4.0.1", port: 1107, proto: "tcp", expect: "open" },
    { source: mesh, fromAddress: "10.42.1.5", target: P["server"], address: "10.4.0.1", port: 10250, proto: "tcp", expect: "open" },
    // ... but an address outside the cluster's ranges does not, even on kilo0.
    { source: mesh, fromAddress: "198.51.100.77", target: P["server"], address: "10.4.0.1", port: 5353, proto: "udp", expect: "blocked" },
    // Forwarded: a pod on another node (through kilo0) to a pod on this node (kube-bridge).
    { source: mesh, fromAddress: "10.42.1.5", target: pod, port: 8080, proto: "tcp", expect: "open" },
    { source: mesh, fromAddress: "10.4.0.2", target: pod, port: 8081, proto: "tcp", expect: "open" },
    { source: mesh, fromAddress: "198.51.100.77", target: pod, port: 8082, proto: "udp", expect: "blocked" },
    // Forwarded: a pod out to the Internet (kube-bridge -> eth0).
    { source: pod, target: P["stranger"], port: 9090, proto: "tcp", expect: "open" },
    // A pod address arriving on the public interface is not trusted.
    { source: P["stranger"], fromAddress: "10.42.7.7", target: P["server"], port: 5354, proto: "udp", expect: "blocked" },
  ];
}

describeReal("PeerFirewall on real hosts", () => {
  beforeAll(async () => {
    // First, before any host exists: throws "the tests need the terraform binary …" without it.
    terraformBinary();
    lab = await createLab({
      hosts: [
        { name: "server", address: `${NET}.10` },
        { name: "agent-1", address: `${NET}.11` },
        { name: "agent-2", address: `${NET}.12`, sudoUser: true },
        { name: "stranger", address: `${NET}.13` },
      ],
    });
    [server, agent1, agent2, stranger] = ["server", "agent-1", "agent-2", "stranger"].map((n) => lab.host(n));
    for (const h of lab.hosts) P[h.name] = labHost(h);
    admin = localHost("admin", lab.adminAddress);
    firewallStack([agent1, agent2]);
    tf = new TerraformCli(stackDir());
    await tf.init();

    // Stand-ins for Kilo's interfaces on the server: kube-bridge to a pod, kilo0 to the mesh.
    extraNetns.push(podNs, meshNs);
    ip("netns", "add", podNs);
    ip("netns", "add", meshNs);
    ip("-n", server.netns, "link", "add", "kube-bridge", "type", "veth", "peer", "name", "eth0", "netns", podNs);
    ip("-n", server.netns, "addr", "add", "10.42.0.1/24", "dev", "kube-bridge");
    ip("-n", server.netns, "link", "set", "kube-bridge", "up");
    ip("-n", podNs, "addr", "add", "10.42.0.5/24", "dev", "eth0");
    ip("-n", podNs, "link", "set", "eth0", "up");
    ip("-n", podNs, "link", "set", "lo", "up");
    ip("-n", podNs, "route", "add", "default", "via", "10.42.0.1");
    ip("-n", server.netns, "link", "add", "kilo0", "type", "veth", "peer", "name", "wg", "netns", meshNs);
    ip("-n", server.netns, "addr", "add", "10.4.0.1/16", "dev", "kilo0");
    ip("-n", server.netns, "link", "set", "kilo0", "up");
    ip("-n", server.netns, "route", "add", "10.42.1.0/24", "via", "10.4.0.2", "dev", "kilo0");
    ip("-n", server.netns, "route", "add", "198.51.100.77/32", "via", "10.4.0.2", "dev", "kilo0");
    for (const a of ["10.4.0.2/16", "10.42.1.5/32", "198.51.100.77/32"]) ip("-n", meshNs, "addr", "add", a, "dev", "wg");
    ip("-n", meshNs, "link", "set", "wg", "up");
    ip("-n", meshNs, "link", "set", "lo", "up");
    ip("-n", meshNs, "route", "add", "10.42.0.0/24", "via", "10.4.0.1");
    // K3s turns forwarding on; here the server's namespace only.
    ip("netns", "exec", server.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
    // Pods reach the Internet masqueraded, as Kilo's KILO-NAT does (squat/kilo pkg/mesh/routes.go:
    // it masquerades the pod subnet's packets to anything outside the cluster's ranges), so replies
    // come back to the server's own address. The guard drops replies addressed to a pod that arrive
    // on the public interface: the stranger must not route them there.
    ip("netns", "exec", server.netns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.42.0.0/24", "-o", "eth0",
      "-m", "comment", "--comment", "stand-in for Kilo: NAT remaining packets", "-j", "MASQUERADE");
    ip("-n", stranger.netns, "addr", "add", "10.42.7.7/32", "dev", "eth0");
    pod = netnsHost("pod", podNs, "10.42.0.5");
    mesh = netnsHost("mesh", meshNs, "10.4.0.2");
  });

  afterAll(async () => {
    await lab?.cleanup();
    for (const ns of extraNetns) spawnSync("ip", ["netns", "del", ns], { timeout: 15000 });
  });

  test("without the firewall every probe gets through (the probes can see 'open')", async () => {
    const all = [...publicMatrix([server, agent1, agent2]), ...kiloMatrix()].map((c) => ({ ...c, expect: "open" as const }));
    const results = await runMatrix(all);
    expect(surprises(results)).toEqual([]);
  });

  test("applying the firewalls over SSH never cuts a session, and enables ufw everywhere", async () => {
    // A session from the admin network that stays open across the apply.
    const ticker: ChildProcess = spawn("ssh", [...lab.sshArgs(server), "i=0; while [ $i -lt 1200 ]; do echo tick; sleep 0.1; i=$((i+1)); done"],
      { stdio: ["ignore", "pipe", "ignore"] });
    let ticks = 0;
    ticker.stdout!.on("data", (d: Buffer) => { ticks += (d.toString().match(/tick/g) ?? []).length; });
    try {
      const deadline = Date.now() + 15000;
      while (ticks === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(ticks).toBeGreaterThan(0);

      const steps = firewallStack([agent1, agent2]);
      const report = await applyFirewalls(steps);
      expect(report.plan).toEqual(Object.fromEntries(Object.values(steps).map((a) => [a, "create"])));
      expect(Object.keys(steps).sort()).toEqual(["agent-1", "agent-2", "server"]);

      const before = ticks;
      await new Promise((r) => setTimeout(r, 1500));
      expect(ticker.exitCode).toBeNull();
      expect(ticks).toBeGreaterThan(before + 5);
    } finally {
      ticker.kill("SIGKILL");
    }
    for (const name of ["server", "agent-1", "agent-2"]) {
      expect(firewallLogs(name)).toMatch(/ufw enabled/);
      expect(firewallLogs(name)).toMatch(/firewall converged/);
    }
    // agent-2 logs in as a passwordless-sudo user: the script re-ran itself as root.
    expect(agent2.sshUser).not.toBe("root");
    for (const h of [server, agent1, agent2]) {
      expect(await h.run("ufw status")).toMatch(/^Status: active$/m);
      // A new session from the admin network still gets in.
      expect(lab.ssh(h, "echo still-here").stdout).toBe("still-here\n");
    }
    expect(await stranger.run("command -v ufw >/dev/null && ufw status || echo none")).toMatch(/inactive|none/);
  });

  test("the matrix: peers on their ports, the admin network on SSH and the API, nothing for anyone else", async () => {
    const results = await runMatrix(publicMatrix([server, agent1, agent2]));
    expect(surprises(results)).toEqual([]);
    // Make the important lines visible in the test output too.
    const lines = results.map((r) => r.line);
    expect(lines).toContain("stranger -> server 6443/tcp: blocked (expected blocked)");
    expect(lines).toContain("stranger -> server 51820/udp: blocked (expected blocked)");
    expect(lines).toContain("stranger -> agent-1 10250/tcp: blocked (expected blocked)");
    expect(lines).toContain("stranger -> server 1107/tcp: blocked (expected blocked)");
    expect(lines).toContain("stranger -> server 22/tcp: blocked (expected blocked)");
    expect(lines).toContain("agent-1 -> server 6443/tcp: open (expected open)");
    expect(lines).toContain("agent-2 -> agent-1 51820/udp: open (expected open)");
    expect(lines).toContain("admin -> server 22/tcp: open (expected open)");
    expect(lines).toContain("admin -> server 6443/tcp: open (expected open)");
  });

  test("Kilo's interfaces: pod and mesh traffic in and through the server, nothing spoofed", async () => {
    const results = await runMatrix(kiloMatrix());
    expect(surprises(results)).toEqual([]);
  });

  test("a second run changes nothing: ufw and iptables identical before and after", async () => {
    await quietSsh();
    const before = await Promise.all([server, agent1, agent2].map(snapshot));
    // -replace runs every firewall step again, as after a lost state or a re-created resource.
    const steps = firewallStack([agent1, agent2]);
    const again = await applyFirewalls(steps, { replace: Object.values(steps) });
    expect(again.provisioned.sort()).toEqual(Object.values(steps).sort());
    for (const node of Object.keys(steps)) {
      const l = firewallLogs(node, [again]);
      expect(l).toMatch(/firewall converged \(0 change\(s\)\)/);
      expect(l).not.toMatch(/added|deleted|enabled/);
    }
    const after = await Promise.all([server, agent1, agent2].map(snapshot));
    expect(after).toEqual(before);
    // And with the same state, Terraform has nothing to do.
    const plan = await tf.plan({ detailedExitcode: true, targets: Object.values(steps) });
    expect(plan.code).toBe(0);
  });

  test("removing agent-2 closes its access on the others; the operator's own rule survives", async () => {
    await quietSsh();
    // The operator opens 8080 to the stranger on agent-1 by hand.
    await agent1.run("ufw allow proto tcp from 203.0.113.13 to any port 8080 comment 'opened by hand'");
    const old = firewallStack([agent1, agent2]);
    const steps = firewallStack([agent1]);
    // The step of a node that left the configuration is destroyed by Terraform; target it too.
    const report = await applyFirewalls(steps, { alsoTarget: [old["agent-2"]] });
    expect(report.plan).toEqual({ [steps.server]: "replace", [steps["agent-1"]]: "replace", [old["agent-2"]]: "delete" });
    expect(firewallLogs("server")).toMatch(/deleted stale rule: ufw allow from 203\.0\.113\.12 to any port 6443 proto tcp/);
    expect(await server.run("ufw show added")).not.toContain("203.0.113.12");
    expect(await agent1.run("ufw show added")).toContain("ufw allow from 203.0.113.13 to any port 8080 proto tcp comment 'opened by hand'");

    const results = await runMatrix([
      { source: P["agent-2"], target: P["server"], port: 6443, proto: "tcp", expect: "blocked" },
      { source: P["agent-2"], target: P["server"], port: 10250, proto: "tcp", expect: "blocked" },
      { source: P["agent-2"], target: P["server"], port: 51820, proto: "udp", expect: "blocked" },
      { source: P["agent-2"], target: P["agent-1"], port: 10250, proto: "tcp", expect: "blocked" },
      { source: P["agent-2"], target: P["agent-1"], port: 51820, proto: "udp", expect: "blocked" },
      { source: P["agent-1"], target: P["server"], port: 6443, proto: "tcp", expect: "open" },
      { source: P["agent-1"], target: P["server"], port: 51820, proto: "udp", expect: "open" },
      { source: P["server"], target: P["agent-1"], port: 10250, proto: "tcp", expect: "open" },
      { source: P["stranger"], target: P["agent-1"], port: 8080, proto: "tcp", expect: "open" },
      { source: P["stranger"], target: P["agent-1"], port: 8081, proto: "tcp", expect: "blocked" },
      { source: admin, target: P["server"], port: 6443, proto: "tcp", expect: "open" },
    ]);
    expect(surprises(results)).toEqual([]);
  });

  test("SSH from the admin network is rate-limited: a burst of new connections is cut off", async () => {
    await quietSsh();
    const answered: boolean[] = [];
    for (let i = 0; i < 8; i++) answered.push(await sshBanner(admin, agent1.address));
    // ufw's limit: five new connections within 30 seconds pass, the sixth and later are refused.
    expect(answered).toEqual([true, true, true, true, true, false, false, false]);
  });

  test("drift: by default a deploy leaves `ufw disable` and a deleted rule alone; with convergeOnEveryApply every apply repairs them, one SSH session per node", async () => {
    await quietSsh();
    const steps = firewallStack([agent1]);
    // Drift by hand: ufw off on agent-1, one of this construct's rules deleted on the server.
    await agent1.run("ufw disable");
    const kubelet = (await server.run("ufw show added")).split("\n").find((l) => / 203\.0\.113\.11 to any port 10250 /.test(l))!;
    await server.run(kubelet.replace(/^ufw /, "ufw delete ").replace(/ comment '[^']*'$/, ""));
    expect(await server.run("ufw show added")).not.toContain("203.0.113.11 to any port 10250");
    // The default: the rules did not change, so Terraform has nothing to do and the drift stays.
    expect((await tf.plan({ detailedExitcode: true, targets: Object.values(steps) })).code).toBe(0);
    expect(await agent1.run("ufw status")).toMatch(/^Status: inactive$/m);

    const every = firewallStack([agent1], { convergeOnEveryApply: true });
    let t0 = Date.now();
    const repair = await applyFirewalls(every);
    const withDrift = (Date.now() - t0) / 1000;
    expect(repair.plan).toEqual(Object.fromEntries(Object.values(every).map((a) => [a, "replace"])));
    expect(repair.provisioned.sort()).toEqual(Object.values(every).sort());
    expect(firewallLogs("agent-1", [repair])).toMatch(/ufw enabled/);
    expect(firewallLogs("server", [repair])).toMatch(/added: ufw allow proto tcp from 203\.0\.113\.11 to any port 10250/);
    expect(await agent1.run("ufw status")).toMatch(/^Status: active$/m);
    expect(await agent1.run("iptables -t raw -S PREROUTING")).toContain("-A PREROUTING -j cdktf-k3s-kilo-guard");
    expect(await server.run("ufw show added")).toContain("203.0.113.11 to any port 10250");

    // Without drift every apply still re-runs every step (and changes nothing): the cost.
    await quietSsh();
    t0 = Date.now();
    const quiet = await applyFirewalls(every);
    const withoutDrift = (Date.now() - t0) / 1000;
    expect(quiet.provisioned.sort()).toEqual(Object.values(every).sort());
    for (const node of Object.keys(every)) expect(firewallLogs(node, [quiet])).toMatch(/firewall converged \(0 change\(s\)\)/);
    console.log(`convergeOnEveryApply, ${Object.keys(every).length} nodes: ${Object.keys(every).length} SSH sessions per apply; ` +
      `apply with drift ${withDrift.toFixed(1)} s, without ${withoutDrift.toFixed(1)} s (terraform apply -target of the firewall steps, wall time)`);
  });
});
