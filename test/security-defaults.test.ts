/**
 * Security defaults and the checks that keep them from being weakened silently, at synth:
 * NetworkPolicy enforced, ServiceLB off and NodePorts on the mesh subnet only (each with its
 * documented opt-out), the install script pinned to the release tag with an optional sha256,
 * image digests validated, and a bad-input table of errors and warnings (issue 11 item 15).
 */
import { Fn, TerraformStack, TerraformVariable, Testing } from "cdktf";
import { K3S_DEFAULT_VERSION, K3sAgent, K3sServer, KiloMesh, KiloPeers, PeerFirewall, Protocol } from "../lib";
import { newStack, parseRenderedYaml, provisioners, resourceOf, synth, validationErrors } from "./util/synth";

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
const KEY = Buffer.alloc(32, 7).toString("base64");
const host = (address: string, extra: Record<string, unknown> = {}) => ({ address, ssh, ...extra });

function configOf(out: any, prefix: string): any {
  return parseRenderedYaml(provisioners(resourceOf(out, "terraform_data", `${prefix}_install`)).find((p) => p.type === "file")!.content);
}
function installScriptOf(out: any, prefix: string): string {
  return provisioners(resourceOf(out, "terraform_data", `${prefix}_install`)).find((p) => p.type === "remote-exec" && /install or reconfigure the K3s/.test(p.inline[0]))!.inline[0];
}
function warningsOf(stack: TerraformStack): string[] {
  return stack.node.findAll().flatMap((c) => c.node.metadata).filter((m) => /warn/.test(m.type)).map((m) => String(m.data));
}

describe("secure defaults in the K3s config", () => {
  test("NetworkPolicy enforced, ServiceLB off, NodePorts on Kilo's subnet, on servers and agents", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", { host: host("203.0.113.10") });
    new K3sAgent(stack, "agent", { server, host: host("203.0.113.11") });
    const out = synth(stack);
    const s = configOf(out, "server");
    const a = configOf(out, "agent");
    expect(s).not.toHaveProperty("disable-network-policy");
    expect(s.disable).toEqual(["servicelb"]);
    expect(s["kube-proxy-arg"]).toEqual(["nodeport-addresses=10.4.0.0/16"]);
    expect(a["kube-proxy-arg"]).toEqual(["nodeport-addresses=10.4.0.0/16"]);
    expect(a).not.toHaveProperty("disable");
  });

  test("each default has an explicit opt-out", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", {
      host: host("203.0.113.10"), networkPolicy: false, serviceLoadBalancer: true, nodePortAddresses: ["0.0.0.0/0"],
    });
    new K3sAgent(stack, "agent", { server, host: host("203.0.113.11"), nodePortAddresses: ["10.4.0.0/16", "192.168.0.0/24"] });
    const out = synth(stack);
    const s = configOf(out, "server");
    expect(s["disable-network-policy"]).toBe(true);
    expect(s).not.toHaveProperty("disable");
    expect(s["kube-proxy-arg"]).toEqual(["nodeport-addresses=0.0.0.0/0"]);
    expect(configOf(out, "agent")["kube-proxy-arg"]).toEqual(["nodeport-addresses=10.4.0.0/16,192.168.0.0/24"]);
    expect(validationErrors(stack)).toEqual([]);
  });

  test("the user's disable and kube-proxy-arg lists are merged with ours, not replaced", () => {
    const { stack } = newStack();
    new K3sServer(stack, "server", { host: host("203.0.113.10"), extraConfig: { "disable": ["traefik"], "kube-proxy-arg": ["metrics-bind-address=127.0.0.1:10249"] } });
    const s = configOf(synth(stack), "server");
    expect(s.disable).toEqual(["servicelb", "traefik"]);
    expect(s["kube-proxy-arg"]).toEqual(["nodeport-addresses=10.4.0.0/16", "metrics-bind-address=127.0.0.1:10249"]);
    expect(validationErrors(stack)).toEqual([]);
  });
});

describe("the install script is the pinned release's", () => {
  test("by default install.sh at the version's tag, never get.k3s.io", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", { host: host("203.0.113.10") });
    new K3sAgent(stack, "agent", { server, host: host("203.0.113.11"), version: "v1.32.8+k3s1" });
    const out = synth(stack);
    expect(installScriptOf(out, "server")).toContain(`INSTALLER_URL='https://raw.githubusercontent.com/k3s-io/k3s/${K3S_DEFAULT_VERSION.replace("+", "%2B")}/install.sh'`);
    expect(installScriptOf(out, "agent")).toContain("INSTALLER_URL='https://raw.githubusercontent.com/k3s-io/k3s/v1.32.8%2Bk3s1/install.sh'");
    expect(installScriptOf(out, "server")).toContain("INSTALLER_SHA256=''");
    expect(JSON.stringify(out)).not.toContain("get.k3s.io");
  });

  test("a version from a Terraform variable gives the URL of that tag at apply time", () => {
    const { stack } = newStack();
    const version = new TerraformVariable(stack, "k3s_version", { type: "string" });
    new K3sServer(stack, "server", { host: host("203.0.113.10"), version: version.stringValue });
    const script = installScriptOf(synth(stack), "server");
    expect(script).toContain('https://raw.githubusercontent.com/k3s-io/k3s/${replace(var.k3s_version, \"+\", \"%2B\")}/install.sh');
  });

  test("a pinned sha256 reaches the host script, lower-cased", () => {
    const { stack } = newStack();
    const sha = "AB".repeat(32);
    new K3sServer(stack, "server", { host: host("203.0.113.10"), install: { scriptSha256: sha } });
    expect(installScriptOf(synth(stack), "server")).toContain(`INSTALLER_SHA256='${sha.toLowerCase()}'`);
    expect(validationErrors(stack)).toEqual([]);
  });
});

type Case = [string, (stack: TerraformStack) => void, RegExp];

const server = (stack: TerraformStack, props: Record<string, unknown> = {}) => new K3sServer(stack, "s", { host: host("203.0.113.10"), ...props } as any);
const firewall = (stack: TerraformStack, props: Record<string, unknown>) => {
  const s = server(stack);
  new PeerFirewall(stack, "fw", { nodes: [s], adminCidrs: ["198.51.100.0/24"], ...props } as any);
};
function meshWith(stack: TerraformStack, props: Record<string, unknown>): KiloMesh {
  const s = server(stack);
  new PeerFirewall(stack, "fw", { nodes: [s], adminCidrs: ["198.51.100.0/24"] });
  return new KiloMesh(new TerraformStack(stack.node.scope as any, "mesh"), "kilo", { server: s, ...props } as any);
}
const peers = (stack: TerraformStack, allowedIps: string[]) => {
  const mesh = meshWith(stack, {});
  new KiloPeers(new TerraformStack(stack.node.scope as any, "peers"), "p", { mesh, peers: [{ name: "laptop", publicKey: KEY, allowedIps }] });
};

const errorCases: Case[] = [
  ["a managed key in K3s's append form (token+)", (st) => server(st, { extraConfig: { "token+": "x" } }), /K3sServer "cluster\/s": extraConfig\["token\+"\]: this key is managed by cdktf-k3s-kilo \(generated by K3sServer\)/],
  ["write-kubeconfig-mode+", (st) => server(st, { extraConfig: { "write-kubeconfig-mode+": "0644" } }), /extraConfig\["write-kubeconfig-mode\+"\]: this key is managed by cdktf-k3s-kilo \(kept at 0600/],
  ["flannel-backend+", (st) => server(st, { extraConfig: { "flannel-backend+": "vxlan" } }), /extraConfig\["flannel-backend\+"\]: this key is managed by cdktf-k3s-kilo \(must stay "none"/],
  ["secrets-encryption shadowing its prop", (st) => server(st, { extraConfig: { "secrets-encryption": false } }), /extraConfig\["secrets-encryption"\]: this key is managed by cdktf-k3s-kilo \(use the secretsEncryption prop\)/],
  ["disable-network-policy shadowing its prop", (st) => server(st, { extraConfig: { "disable-network-policy": true } }), /extraConfig\["disable-network-policy"\]: this key is managed by cdktf-k3s-kilo \(use the networkPolicy prop\)/],
  ["nodeport-addresses through kube-proxy-arg", (st) => server(st, { extraConfig: { "kube-proxy-arg": ["nodeport-addresses=0.0.0.0/0"] } }), /extraConfig\["kube-proxy-arg"\]: "nodeport-addresses=0\.0\.0\.0\/0": use the nodePortAddresses prop/],
  ["a bad nodePortAddresses CIDR", (st) => server(st, { nodePortAddresses: ["10.4.0.1/16"] }), /nodePortAddresses\[0\]: "10\.4\.0\.1\/16" has host bits set/],
  ["no nodePortAddresses", (st) => server(st, { nodePortAddresses: [] }), /nodePortAddresses: give at least one CIDR block/],
  ["a malformed install script sha256", (st) => server(st, { install: { scriptSha256: "abc123" } }), /install\.scriptSha256: "abc123" is not a sha256 digest \(64 hexadecimal digits/],
  ["extraRules on SSH from anywhere", (st) => firewall(st, { extraRules: [{ port: 22 }] }), /PeerFirewall "cluster\/fw": extraRules\[0\]: opens 22\/tcp \(SSH\) to anywhere, which PeerFirewall keeps to the admin networks/],
  ["extraRules on the API from 0.0.0.0/0", (st) => firewall(st, { extraRules: [{ port: 6443, from: ["0.0.0.0/0"] }] }), /extraRules\[0\]: opens 6443\/tcp \(the Kubernetes API\) to anywhere/],
  ["extraRules on the kubelet, any protocol", (st) => firewall(st, { extraRules: [{ port: 10250, protocol: Protocol.ANY }] }), /extraRules\[0\]: opens 10250\/tcp \(the kubelet API\) to anywhere/],
  ["extraRules on a range covering etcd", (st) => firewall(st, { extraRules: [{ port: 2000, endPort: 3000 }] }), /extraRules\[0\]: opens 2379-2380\/tcp \(etcd\) to anywhere/],
  ["extraRules on WireGuard from ::/0", (st) => firewall(st, { extraRules: [{ port: 51820, protocol: Protocol.UDP, from: ["::/0"] }] }), /extraRules\[0\]: opens 51820\/udp \(Kilo's WireGuard\) to anywhere/],
  ["an image digest too short", (st) => meshWith(st, { image: "docker.io/squat/kilo@sha256:abc" }), /KiloMesh "mesh\/kilo": image: "docker\.io\/squat\/kilo@sha256:abc" has a malformed digest "sha256:abc": write @sha256: followed by 64 lower-case hexadecimal digits/],
  ["an image digest with non-hex digits", (st) => meshWith(st, { image: `squat/kilo:0.7.0@sha256:${"g".repeat(64)}` }), /image: .* has a malformed digest/],
  ["an image digest of another algorithm", (st) => meshWith(st, { image: `squat/kilo@md5:${"a".repeat(32)}` }), /image: .* has a malformed digest "md5:/],
  ["an image with a bad tag", (st) => meshWith(st, { image: "squat/kilo:0.7.0:x" }), /image: "squat\/kilo:0\.7\.0:x" is not an image reference/],
  ["a peer claiming a node's address", (st) => peers(st, ["203.0.113.10/32"]), /KiloPeers "peers\/p": peers\[0\] \("laptop"\): allowedIps: 203\.0\.113\.10\/32 overlaps the address of node cluster\/s \(203\.0\.113\.10\)/],
  ["a peer claiming the admin network", (st) => peers(st, ["198.51.100.128/25"]), /PeerFirewall "cluster\/fw": adminCidrs: 198\.51\.100\.0\/24 overlaps the allowedIps 198\.51\.100\.128\/25 of KiloPeers peers\/p peers\[0\] \("laptop"\)/],
];

describe("bad input is refused at synth", () => {
  test.each(errorCases)("%s", (_name, build, message) => {
    const { stack } = newStack();
    build(stack);
    const errors = stack.node.scope!.node.findAll().flatMap((c) => c.node.validate());
    expect(errors.join("\n")).toMatch(message);
  });

  test("the nearby good values pass", () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, "cluster");
    const s = new K3sServer(stack, "s", { host: host("203.0.113.10"), install: { scriptSha256: "a".repeat(64) }, extraConfig: { "disable+": ["traefik"] } });
    new PeerFirewall(stack, "fw", {
      nodes: [s], adminCidrs: ["198.51.100.0/24"],
      extraRules: [{ port: 6443, from: ["192.0.2.0/24"] }, { port: 51820, protocol: Protocol.TCP }, { port: 443 }, { port: 2222, from: ["192.0.2.7"] }],
    });
    const mesh = new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server: s, image: `ghcr.io/squat/kilo:0.7.0@sha256:${"0a".repeat(32)}`, wireguardGoImage: `x/wg@sha256:${"b".repeat(64)}`, userspaceWireguard: true });
    new KiloPeers(new TerraformStack(app, "peers"), "p", { mesh, peers: [{ name: "laptop", publicKey: KEY, allowedIps: ["10.5.0.1/32"] }] });
    expect(app.node.findAll().flatMap((c) => c.node.validate())).toEqual([]);
  });

  test("tokens pass through the new checks", () => {
    const { stack } = newStack();
    const v = (n: string) => new TerraformVariable(stack, n, { type: "string" }).stringValue;
    new K3sServer(stack, "s", { host: host("203.0.113.10"), install: { scriptSha256: v("sha") }, nodePortAddresses: [v("np")] });
    expect(validationErrors(stack)).toEqual([]);
    expect(Fn).toBeDefined();
  });
});

describe("warnings for settings that weaken the firewall", () => {
  test.each([
    ["adminCidrs of 0.0.0.0/0", { adminCidrs: ["0.0.0.0/0"] }, /PeerFirewall "cluster\/fw": adminCidrs\[0\]: "0\.0\.0\.0\/0" is the whole Internet: SSH on every node and the Kubernetes API on servers are open to it/],
    ["apiCidrs of ::/0", { apiCidrs: ["::/0"] }, /apiCidrs\[0\]: "::\/0" is the whole Internet: the Kubernetes API \(6443\/tcp on servers\) is open to it/],
    ["a very short admin prefix", { adminCidrs: ["8.0.0.0/6"] }, /adminCidrs\[0\]: "8\.0\.0\.0\/6" is a very wide network \(\/6, more than a \/8\)/],
    ["a very short IPv6 API prefix", { apiCidrs: ["2000::/3"] }, /apiCidrs\[0\]: "2000::\/3" is a very wide network/],
  ])("%s", (_name, props, message) => {
    const { stack } = newStack();
    firewall(stack, props);
    expect(warningsOf(stack).join("\n")).toMatch(message);
  });

  test("ordinary admin networks give no such warning", () => {
    const { stack } = newStack();
    firewall(stack, { adminCidrs: ["198.51.100.0/24"], apiCidrs: ["10.0.0.0/8", "2001:db8::/32"] });
    expect(warningsOf(stack)).toEqual([]);
  });

  test.each([
    [":1107", /metricsListen: ":1107" serves kg's metrics, pprof and mesh graph on every address of every node, public ones included/],
    ["0.0.0.0:1107", /on every address of every node/],
    ["10.0.0.5:1107", /metricsListen: "10\.0\.0\.5:1107" serves kg's metrics, pprof and mesh graph on 10\.0\.0\.5\./],
  ])("metricsListen %s", (listen, message) => {
    const { stack } = newStack();
    meshWith(stack, { metricsListen: listen });
    expect(stack.node.scope!.node.findAll().flatMap((c) => c.node.metadata).filter((m) => /warn/.test(m.type)).map((m) => String(m.data)).join("\n")).toMatch(message);
  });

  test.each(["127.0.0.1:1107", "[::1]:1107", "localhost:9100"])("metricsListen %s on loopback: no warning", (listen) => {
    const { stack } = newStack();
    meshWith(stack, { metricsListen: listen });
    const w = stack.node.scope!.node.findAll().flatMap((c) => c.node.metadata).filter((m) => /warn/.test(m.type)).map((m) => String(m.data));
    expect(w.filter((x) => x.includes("metricsListen"))).toEqual([]);
  });

  test("private addresses without a location are named", () => {
    const { stack } = newStack();
    const s = new K3sServer(stack, "s", { host: host("203.0.113.10", { privateAddress: "10.0.0.2" }) });
    const a = new K3sAgent(stack, "a", { server: s, host: host("203.0.113.11", { privateAddress: "10.0.0.3", location: "fra1" }) });
    new PeerFirewall(stack, "fw", { nodes: [s, a], adminCidrs: ["198.51.100.0/24"] });
    expect(warningsOf(stack).join("\n")).toMatch(/PeerFirewall "cluster\/fw": cluster\/s have host\.privateAddress but no host\.location\. A node's private address is allowed only on the firewalls of nodes with the same location/);
  });
});
