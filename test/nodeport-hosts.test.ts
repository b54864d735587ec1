/**
 * NodePort and LoadBalancer ports against ufw, on real hosts with real packets.
 *
 * kube-proxy writes its Service rules ahead of ufw's chains: a NodePort is DNATed in nat PREROUTING
 * and marked, and filter FORWARD's first jump (KUBE-FORWARD) accepts marked packets, so ufw's
 * default-deny never sees them. What decides who reaches a NodePort is therefore kube-proxy's
 * `--nodeport-addresses`, which K3sServer/K3sAgent now set to Kilo's subnet by default, and whether
 * K3s's ServiceLB publishes LoadBalancer Services on the node addresses (off by default).
 *
 * kube-proxy itself cannot run here (it needs an API server), so a STAND-IN renders kube-proxy's
 * documented rule shapes (test/util/kube-proxy-stand-in.ts) from the K3s config our constructs
 * synthesize, and loads them beside the real ufw firewall our PeerFirewall renders. The pod and the
 * mesh peer are network namespaces behind interfaces named kube-bridge and kilo0 (a veth, not
 * WireGuard). Everything else is real: ufw, iptables, routing, TCP.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import { K3sServer } from "../lib";
import { nodeRuleSet } from "../lib/render/firewall-rules";
import { renderBatchedFirewallScript } from "../lib/render/ufw-script";
import { createLab, Lab, LabHost } from "./harness/lab";
import { kubeProxyStandInRemoval, kubeProxyStandInRules } from "./util/kube-proxy-stand-in";
import { newStack, parseRenderedYaml, provisioners, resourceOf, synth } from "./util/synth";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

jest.setTimeout(300000);

const canRun = process.getuid?.() === 0 && ["ufw", "iptables", "socat", "sshd", "unshare", "ip", "nc"]
  .every((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
const describeReal = canRun ? describe : describe.skip;

const id = randomBytes(3).toString("hex");
const podNs = `cdktf-np-${id}-pod`;
const meshNs = `cdktf-np-${id}-mesh`;
const NODE_PORT = 30080;
const LB_PORT = 80;

let lab: Lab;
let node: LabHost;
let stranger: LabHost;
let listener: ChildProcess | undefined;
let publicListener: ChildProcess | undefined;
/** A port PeerFirewall opens to anywhere on the node (an extra rule): ufw's public allowances must keep working. */
const PUBLIC_PORT = 8443;
const madeNetns: string[] = [];

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 15000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** The K3s config our K3sServer uploads, for the given props. */
function serverConfig(props: Record<string, unknown>): any {
  const { stack } = newStack();
  new K3sServer(stack, "server", { host: { address: node.address, ssh: { privateKeyPath: "/dev/null" } }, ...props });
  const file = provisioners(resourceOf(synth(stack), "terraform_data", "server_install")).find((p) => p.type === "file");
  return parseRenderedYaml(file!.content);
}

/** kube-proxy's --nodeport-addresses from a K3s config; kube-proxy's default (every address) when absent. */
function nodePortAddressesOf(config: any): string[] {
  const arg = ((config["kube-proxy-arg"] ?? []) as string[]).find((a) => a.startsWith("nodeport-addresses="));
  return arg ? arg.slice("nodeport-addresses=".length).split(",") : ["0.0.0.0/0"];
}

/** Load the stand-in's rules for `config` on the node, replacing any loaded before. */
async function loadKubeProxyStandIn(config: any): Promise<string> {
  await node.exec("iptables-restore --noflush", { input: kubeProxyStandInRemoval() });
  const local = (await node.run("ip -o -4 addr show | awk '{print $4}' | cut -d/ -f1")).trim().split("\n");
  const serviceLb = !((config.disable ?? []) as string[]).includes("servicelb");
  const rules = kubeProxyStandInRules({
    nodePortAddresses: nodePortAddressesOf(config),
    localAddresses: local,
    clusterIp: "10.43.0.50",
    port: LB_PORT,
    nodePort: NODE_PORT,
    endpoint: "10.42.0.5:8080",
    podCidr: "10.42.0.0/16",
    // ServiceLB writes the node's addresses into the Service's status; kube-proxy serves them.
    loadBalancerIps: serviceLb ? [node.address] : [],
  });
  await node.run("iptables-restore --noflush", { input: rules });
  return rules;
}

/** What a TCP client gets back within a few seconds ("" when nothing answers). */
async function probeFrom(h: LabHost, address: string, port: number): Promise<string> {
  return (await h.exec(`timeout 8 nc -w 3 ${address} ${port} </dev/null`)).stdout.trim();
}

function probeFromMesh(address: string, port: number): string {
  const r = spawnSync("ip", ["netns", "exec", meshNs, "timeout", "8", "nc", "-w", "3", address, String(port)], { encoding: "utf8", input: "", timeout: 15000 });
  return (r.stdout ?? "").trim();
}

describeReal("NodePorts and LoadBalancer ports on a host with ufw and kube-proxy's rules (stand-in)", () => {
  beforeAll(async () => {
    lab = await createLab({ hosts: [{ name: "node", address: "198.51.100.10" }, { name: "stranger", address: "198.51.100.20" }] });
    node = lab.host("node");
    stranger = lab.host("stranger");
    // The real firewall PeerFirewall deploys for this node (the batched converge; admin network: the test machine).
    const set = nodeRuleSet({
      nodes: [{ name: "node", role: "server", address: node.address }],
      adminCidrs: [`${lab.adminAddress}/32`],
      extraRules: [{ port: PUBLIC_PORT, description: "a public service" }],
    }, "node");
    await node.run("sh -s", { input: renderBatchedFirewallScript(set, LATE), timeoutMs: 120000 });
    // A pod behind kube-bridge, and a mesh peer behind kilo0.
    madeNetns.push(podNs, meshNs);
    ip("netns", "add", podNs);
    ip("netns", "add", meshNs);
    ip("-n", node.netns, "link", "add", "kube-bridge", "type", "veth", "peer", "name", "eth0", "netns", podNs);
    ip("-n", node.netns, "addr", "add", "10.42.0.1/24", "dev", "kube-bridge");
    ip("-n", node.netns, "link", "set", "kube-bridge", "up");
    ip("-n", podNs, "addr", "add", "10.42.0.5/24", "dev", "eth0");
    ip("-n", podNs, "link", "set", "eth0", "up");
    ip("-n", podNs, "link", "set", "lo", "up");
    ip("-n", podNs, "route", "add", "default", "via", "10.42.0.1");
    ip("-n", node.netns, "link", "add", "kilo0", "type", "veth", "peer", "name", "wg", "netns", meshNs);
    ip("-n", node.netns, "addr", "add", "10.4.0.1/16", "dev", "kilo0");
    ip("-n", node.netns, "link", "set", "kilo0", "up");
    ip("-n", meshNs, "addr", "add", "10.4.0.2/16", "dev", "wg");
    ip("-n", meshNs, "link", "set", "wg", "up");
    ip("-n", meshNs, "link", "set", "lo", "up");
    // The mesh peer reaches this node's pods and Services through kilo0, as Kilo routes them.
    ip("-n", meshNs, "route", "add", "10.42.0.0/16", "via", "10.4.0.1");
    ip("-n", meshNs, "route", "add", "10.43.0.0/16", "via", "10.4.0.1");
    // kube-proxy and K3s need forwarding on; so does a real node.
    ip("netns", "exec", node.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
    listener = spawn("ip", ["netns", "exec", podNs, "socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo pod-reply"], { stdio: "ignore" });
    publicListener = spawn("ip", ["netns", "exec", node.netns, "socat", `TCP-LISTEN:${PUBLIC_PORT},fork,reuseaddr`, "SYSTEM:echo public-reply"], { stdio: "ignore" });
    // The pod answers from the node itself (nothing in between but routing).
    for (let i = 0; i < 50 && !(await node.exec("timeout 5 nc -w 2 10.42.0.5 8080 </dev/null")).stdout.includes("pod-reply"); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    try { listener?.kill("SIGKILL"); } catch { /* gone */ }
    try { publicListener?.kill("SIGKILL"); } catch { /* gone */ }
    for (const ns of madeNetns) spawnSync("ip", ["netns", "del", ns], { timeout: 15000 });
    await lab?.cleanup();
  });

  test("ufw alone: nothing answers a stranger on the NodePort or port 80", async () => {
    await node.exec("iptables-restore --noflush", { input: kubeProxyStandInRemoval() });
    expect(await probeFrom(stranger, node.address, NODE_PORT)).toBe("");
    expect(await probeFrom(stranger, node.address, LB_PORT)).toBe("");
  });

  test("default config: a stranger cannot reach a NodePort or a LoadBalancer port; a mesh peer reaches the NodePort", async () => {
    const config = serverConfig({});
    expect(nodePortAddressesOf(config)).toEqual(["10.4.0.0/16"]);
    const rules = await loadKubeProxyStandIn(config);
    expect(rules).toContain("-d 10.4.0.1/32 -m comment --comment \"kubernetes service nodeports");
    expect(rules).not.toContain(`-d ${node.address}/32`);
    expect(await probeFrom(stranger, node.address, NODE_PORT)).toBe("");
    expect(await probeFrom(stranger, node.address, LB_PORT)).toBe("");
    expect(probeFromMesh("10.4.0.1", NODE_PORT)).toBe("pod-reply");
  });

  test("a neighbour that routes the pod, service and mesh ranges to the node gets nothing; the mesh, the pods and ufw's public rules still work", async () => {
    const config = serverConfig({});
    await loadKubeProxyStandIn(config);
    // A machine on the node's segment (same bridge) sends the cluster's ranges to the node's public address.
    for (const net of ["10.4.0.0/16", "10.42.0.0/16", "10.43.0.0/16"]) await stranger.run(`ip route replace ${net} via ${node.address}`);
    try {
      const got = {
        nodePortOnKilo0: await probeFrom(stranger, "10.4.0.1", NODE_PORT),
        clusterIp: await probeFrom(stranger, "10.43.0.50", LB_PORT),
        pod: await probeFrom(stranger, "10.42.0.5", 8080),
      };
      expect(got).toEqual({ nodePortOnKilo0: "", clusterIp: "", pod: "" });
    } finally {
      for (const net of ["10.4.0.0/16", "10.42.0.0/16", "10.43.0.0/16"]) await stranger.exec(`ip route del ${net}`);
    }
    // The legitimate paths: a mesh peer on kilo0 (NodePort, ClusterIP, pod), the pod itself through
    // its Service (kube-bridge), and a port ufw opens on the public address.
    expect(probeFromMesh("10.4.0.1", NODE_PORT)).toBe("pod-reply");
    expect(probeFromMesh("10.43.0.50", LB_PORT)).toBe("pod-reply");
    expect(probeFromMesh("10.42.0.5", 8080)).toBe("pod-reply");
    const fromPod = spawnSync("ip", ["netns", "exec", podNs, "timeout", "8", "nc", "-w", "3", "10.43.0.50", String(LB_PORT)], { encoding: "utf8", input: "", timeout: 15000 });
    expect((fromPod.stdout ?? "").trim()).toBe("pod-reply");
    expect(await probeFrom(stranger, node.address, PUBLIC_PORT)).toBe("public-reply");
  });

  /** What the neighbour of the test above gets, with its routes to the cluster's ranges. */
  async function neighbourProbe(): Promise<Record<string, string>> {
    for (const net of ["10.4.0.0/16", "10.42.0.0/16", "10.43.0.0/16"]) await stranger.run(`ip route replace ${net} via ${node.address}`);
    try {
      return {
        nodePortOnKilo0: await probeFrom(stranger, "10.4.0.1", NODE_PORT),
        clusterIp: await probeFrom(stranger, "10.43.0.50", LB_PORT),
        pod: await probeFrom(stranger, "10.42.0.5", 8080),
      };
    } finally {
      for (const net of ["10.4.0.0/16", "10.42.0.0/16", "10.43.0.0/16"]) await stranger.exec(`ip route del ${net}`);
    }
  }
  const NOTHING = { nodePortOnKilo0: "", clusterIp: "", pod: "" };

  test("the guard survives `ufw reload` and a boot (tables empty, ufw-init start), with one jump; `ufw disable` takes it down with the rest of ufw", async () => {
    await loadKubeProxyStandIn(serverConfig({}));
    const jumps = async () => (await node.run("iptables -t raw -S PREROUTING")).split("\n").filter((l) => l === "-A PREROUTING -j cdktf-k3s-kilo-guard").length;
    expect(await jumps()).toBe(1);
    await node.run("ufw reload");
    await node.run("ufw reload");
    expect(await jumps()).toBe(1);
    expect(await neighbourProbe()).toEqual(NOTHING);

    // A boot: the kernel's tables are empty, ufw's init script loads its files (before.init included),
    // kube-proxy writes its rules after.
    await node.run("for t in filter nat raw; do iptables -t $t -F; iptables -t $t -X; done; iptables -P INPUT ACCEPT; iptables -P FORWARD ACCEPT; iptables -P OUTPUT ACCEPT");
    expect(await jumps()).toBe(0);
    await node.run("/lib/ufw/ufw-init start");
    await loadKubeProxyStandIn(serverConfig({}));
    expect(await jumps()).toBe(1);
    expect(await neighbourProbe()).toEqual(NOTHING);

    // `ufw disable` stops ufw's firewall, the guard with it; the next converge (or `ufw enable`) restores it.
    await node.run("ufw disable");
    expect(await jumps()).toBe(0);
    await node.run("ufw --force enable");
    expect(await jumps()).toBe(1);
    expect(await neighbourProbe()).toEqual(NOTHING);
    expect(probeFromMesh("10.43.0.50", LB_PORT)).toBe("pod-reply");
  });

  test("a packet from the public side that claims a pod address as its source is dropped by the guard before ufw sees it", async () => {
    const counted = async () => {
      const out = await node.run("iptables -t raw -L cdktf-k3s-kilo-guard -n -v -x");
      const line = out.split("\n").find((l) => /DROP/.test(l) && /10\.42\.0\.0\/16\s+0\.0\.0\.0\/0/.test(l));
      return Number(line!.trim().split(/\s+/)[0]);
    };
    const before = await counted();
    await stranger.run("ip addr add 10.42.77.7/32 dev eth0");
    try {
      // To a port ufw opens to anyone: only the guard tells this source apart.
      expect((await stranger.exec(`timeout 8 nc -w 2 -s 10.42.77.7 ${node.address} ${PUBLIC_PORT} </dev/null`)).stdout.trim()).toBe("");
    } finally {
      await stranger.exec("ip addr del 10.42.77.7/32 dev eth0");
    }
    expect(await counted()).toBeGreaterThan(before);
  });

  test("opt-in open config (nodePortAddresses 0.0.0.0/0, ServiceLB on): the stranger gets through although ufw has no rule for it", async () => {
    const config = serverConfig({ nodePortAddresses: ["0.0.0.0/0"], serviceLoadBalancer: true });
    expect(nodePortAddressesOf(config)).toEqual(["0.0.0.0/0"]);
    await loadKubeProxyStandIn(config);
    expect(await probeFrom(stranger, node.address, NODE_PORT)).toBe("pod-reply");
    expect(await probeFrom(stranger, node.address, LB_PORT)).toBe("pod-reply");
    // ufw's own rules never mention these ports.
    const ufw = await node.run("ufw status");
    expect(ufw).not.toMatch(new RegExp(`\\b(${NODE_PORT}|${LB_PORT})\\b`));
  });
});
