/** Bad input is refused at synth with a message naming the construct, the field and the fix. */
import { App, Fn, TerraformStack, TerraformVariable, Testing } from "cdktf";
import { K3sAgent, K3sServer, KiloMesh, PeerFirewall } from "../lib";
import { newStack, validationErrors } from "./util/synth";
// Built at run time so that no key block is committed (scanners flag one even when it is fake).
const FAKE_KEY_HEADER = ["-----BEGIN", "OPENSSH", "PRIVATE", "KEY-----"].join(" ");

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
const host = (extra: Record<string, unknown> = {}) => ({ address: "203.0.113.10", ssh, ...extra });

type Case = [string, Record<string, unknown>, RegExp];

const serverCases: Case[] = [
  ["a malformed IP", { host: host({ address: "203.0.113.300" }) }, /K3sServer "cluster\/s": host\.address: "203\.0\.113\.300" is not a valid IPv4 address/],
  ["an IPv4 shorthand", { host: host({ address: "10.1" }) }, /host\.address: "10\.1" is not a valid IP address; write IPv4 as four decimal parts/],
  ["a bad hostname", { host: host({ address: "bad_host!.example" }) }, /host\.address: "bad_host!\.example" is neither an IP address nor a DNS name/],
  ["a NAT'd host given by name", { host: host({ address: "vm.example.com", publicAddressOnInterface: false }) }, /host\.address: "vm\.example\.com" must be an IP address when publicAddressOnInterface is false/],
  ["a bad private address", { host: host({ privateAddress: "10.0.0" }) }, /host\.privateAddress: "10\.0\.0" is not an IP address/],
  ["a bad CIDR", { clusterCidr: "10.42.0.0" }, /clusterCidr: "10\.42\.0\.0" is not a CIDR block; add the prefix length/],
  ["host bits in a CIDR", { serviceCidr: "10.43.0.1/16" }, /serviceCidr: "10\.43\.0\.1\/16" has host bits set; did you mean 10\.43\.0\.0\/16\?/],
  ["a prefix too long", { clusterCidr: "10.42.0.0/33" }, /clusterCidr: "10\.42\.0\.0\/33" is not a CIDR block: the prefix length must be 0-32/],
  ["a floating version", { version: "latest" }, /version: "latest" is not a K3s release; use the form v1\.N\.P\+k3sM/],
  ["a version without the k3s suffix", { version: "v1.33.4" }, /version: "v1\.33\.4" is not a K3s release/],
  ["a bad node name", { nodeName: "Node_1" }, /nodeName: "Node_1" is not a valid node name/],
  ["a bad label key", { labels: { "-bad": "x" } }, /labels: label key "-bad" is invalid/],
  ["a label prefix with capitals", { labels: { "Example.com/role": "x" } }, /labels: label key "Example\.com\/role" has an invalid prefix/],
  ["a bad label value", { labels: { role: "a b" } }, /labels: label "role" has an invalid value "a b"/],
  ["a long label value", { labels: { role: "x".repeat(64) } }, /labels: label "role" has an invalid value/],
  ["a taint without effect", { taints: ["dedicated=gpu"] }, /taints: taint "dedicated=gpu" is invalid: use key=value:Effect/],
  ["a taint with an unknown effect", { taints: ["a=b:Never"] }, /taints: taint "a=b:Never" is invalid/],
  ["plain http for the installer", { install: { scriptUrl: "http://get.k3s.io" } }, /install\.scriptUrl: "http:\/\/get\.k3s\.io" is plain http: the script runs as root/],
  ["a bad ready timeout", { install: { readyTimeoutSeconds: 1.5 } }, /install\.readyTimeoutSeconds: 1\.5 must be a whole number of seconds between 10 and 3600/],
  ["a managed key in extraConfig", { extraConfig: { "flannel-backend": "vxlan" } }, /extraConfig\["flannel-backend"\]: this key is managed by cdktf-k3s-kilo \(must stay "none": Kilo is the CNI\)/],
  ["a token in extraConfig", { extraConfig: { token: "x" } }, /extraConfig\["token"\]: this key is managed by cdktf-k3s-kilo/],
  ["a flag with dashes", { extraConfig: { "--disable": ["traefik"] } }, /extraConfig\["--disable"\]: write the flag name without leading dashes \("disable"\)/],
  ["a bad SSH port", { host: host({ ssh: { ...ssh, port: 70000 } }) }, /host\.ssh\.port: 70000 is not a port number/],
  ["a bad SSH timeout", { host: host({ ssh: { ...ssh, timeout: "two minutes" } }) }, /host\.ssh\.timeout: "two minutes" is not a duration/],
  ["a bad host key", { host: host({ ssh: { ...ssh, hostKey: "AAAAC3Nza" } }) }, /host\.ssh\.hostKey: host key "AAAAC3Nza…" is not an OpenSSH public key line/],
  ["a relative script path", { host: host({ ssh: { ...ssh, scriptPath: "tmp/x.sh" } }) }, /host\.ssh\.scriptPath: "tmp\/x\.sh" must be an absolute path of letters, digits/],
  ["a script path with a command substitution", { host: host({ ssh: { ...ssh, scriptPath: "/tmp/$(id)_%RAND%.sh" } }) }, /host\.ssh\.scriptPath: "\/tmp\/\$\(id\)_%RAND%\.sh" must be an absolute path of letters, digits, "\.", "_", "-" and "\/" \(Terraform runs it unquoted\)/],
  ["a script path with ; and a space", { host: host({ ssh: { ...ssh, scriptPath: "/tmp/a;b c_%RAND%.sh" } }) }, /host\.ssh\.scriptPath: .* must be an absolute path of letters/],
  ["a script path with backticks", { host: host({ ssh: { ...ssh, scriptPath: "/tmp/`id`_%RAND%.sh" } }) }, /host\.ssh\.scriptPath: .* must be an absolute path of letters/],
  ["a script path without %RAND%", { host: host({ ssh: { ...ssh, scriptPath: "/var/tmp/tf.sh" } }) }, /host\.ssh\.scriptPath: "\/var\/tmp\/tf\.sh" must contain %RAND%: steps that run at the same time on one host would otherwise overwrite each other's script \(e\.g\. \/var\/tmp\/tf_%RAND%\.sh\)/],
  ["an SSH port given as a string", { host: host({ ssh: { ...ssh, port: "22" } }) }, /host\.ssh\.port: "22" is a string; give the port as a number, e\.g\. port: 22/],
  ["a bastion port given as a string", { host: host({ ssh: { ...ssh, bastion: { host: "203.0.113.1", port: "2222" } } }) }, /host\.ssh\.bastion\.port: "2222" is a string; give the port as a number, e\.g\. port: 2222/],
  ["a literal private key", { host: host({ ssh: { ...ssh, privateKey: `${FAKE_KEY_HEADER}\nabc\n` } }) }, /host\.ssh\.privateKey: a literal key would be written in clear into cdk\.tf\.json and every saved plan; pass a token instead \(e\.g\. a TerraformVariable with sensitive: true/],
  ["no credentials", { host: host({ ssh: { agent: false } }) }, /host\.ssh: no credentials: agent is false and neither privateKeyPath nor privateKey is set/],
  ["key content only", { host: host({ ssh: { privateKey: `${FAKE_KEY_HEADER}…` } }) }, /host\.ssh: privateKey \(the key's content\) reaches create-time steps only.*Also set privateKeyPath, or agent: true/],
  ["a bad bastion", { host: host({ ssh: { ...ssh, bastion: { host: "300.1.1.1" } } }) }, /host\.ssh\.bastion\.host: "300\.1\.1\.1" is not a valid IPv4 address/],
  ["a bad TLS SAN", { tlsSans: ["not a name"] }, /tlsSans: "not a name" is neither an IP address nor a DNS name/],
  ["a bad cluster name", { clusterName: "My Cluster" }, /clusterName: "My Cluster" is not a valid node name/],
  ["a bad location", { host: host({ location: "eu west" }) }, /host\.location: label "location" has an invalid value "eu west"/],
  ["an address with a port", { host: host({ address: "203.0.113.10:2222" }) }, /host\.address: "203\.0\.113\.10:2222" has a port; drop the port \("203\.0\.113\.10"\) and use ssh\.port for the SSH port/],
  ["an IPv6 address with a port", { host: host({ address: "[2001:db8::10]:22" }) }, /host\.address: "\[2001:db8::10\]:22" has a port; drop the port \("2001:db8::10"\)/],
  ["a URL as the address", { host: host({ address: "ssh://203.0.113.10:22" }) }, /host\.address: "ssh:\/\/203\.0\.113\.10:22" is a URL; give the bare address \("203\.0\.113\.10"\): drop the scheme and the port; use ssh\.port/],
  ["a bastion with a port", { host: host({ ssh: { ...ssh, bastion: { host: "203.0.113.5:2222" } } }) }, /host\.ssh\.bastion\.host: "203\.0\.113\.5:2222" has a port; drop the port \("203\.0\.113\.5"\) and use ssh\.port/],
  ["0.0.0.0 as the address", { host: host({ address: "0.0.0.0" }) }, /K3sServer "cluster\/s": host\.address: "0\.0\.0\.0" means "any address" and reaches no host/],
  ["a loopback address", { host: host({ address: "127.0.0.1" }) }, /host\.address: "127\.0\.0\.1" is a loopback address: other nodes would reach themselves/],
  ["an IPv6 loopback address", { host: host({ address: "::1" }) }, /host\.address: "::1" is a loopback address/],
  ["a link-local address", { host: host({ address: "169.254.10.1" }) }, /host\.address: "169\.254\.10\.1" is a link-local address/],
  ["an IPv6 link-local address", { host: host({ address: "fe80::1" }) }, /host\.address: "fe80::1" is a link-local address/],
  ["an IPv4-mapped IPv6 address", { host: host({ address: "::ffff:203.0.113.10" }) }, /host\.address: "::ffff:203\.0\.113\.10" is an IPv4 address in IPv6 form; write it as 203\.0\.113\.10/],
];

describe("bad input is reported at synth", () => {
  test.each(serverCases)("K3sServer with %s", (_name, props, message) => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: host(), ...props } as any);
    const errors = validationErrors(stack);
    expect(errors.join("\n")).toMatch(message);
  });

  test("a valid server has no errors", () => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: host({ location: "fra1", privateAddress: "10.0.0.2" }), labels: { "example.com/role": "cp" }, taints: ["a=b:NoSchedule", "c:NoExecute"], extraConfig: { disable: ["traefik"] } });
    expect(validationErrors(stack)).toEqual([]);
  });

  test("duplicate node names are refused on both nodes", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: host(), nodeName: "n1" });
    new K3sAgent(stack, "a", { server, host: host({ address: "203.0.113.11" }), nodeName: "n1" });
    const errors = validationErrors(stack).join("\n");
    expect(errors).toMatch(/K3sServer "cluster\/s": nodeName: "n1" is also the node name of cluster\/a; give each node its own nodeName/);
    expect(errors).toMatch(/K3sAgent "cluster\/a": nodeName: "n1" is also the node name of cluster\/s/);
  });

  test("an agent without a K3sServer, and a bad drain timeout", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: host() });
    new K3sAgent(stack, "a", { server, host: host({ address: "203.0.113.11" }), drainTimeoutSeconds: -1 });
    expect(validationErrors(stack).join("\n")).toMatch(/K3sAgent "cluster\/a": drainTimeoutSeconds: -1 must be a whole number of seconds between 0 and 3600/);
  });

  test("Terraform tokens pass through unvalidated", () => {
    const { stack } = newStack();
    const addr = Fn.element(Fn.split(",", "x"), 0);
    const server = new K3sServer(stack, "s", {
      host: { address: addr, privateAddress: addr, publicAddressOnInterface: false, ssh: { ...ssh, user: Fn.lower("X"), hostKey: Fn.trimspace(" k ") } },
      nodeName: Fn.lower("NODE"),
      version: Fn.trimspace(" v "),
    });
    new K3sAgent(stack, "a", { server, host: { address: Fn.element(Fn.split(",", "y"), 0), ssh } });
    expect(validationErrors(stack)).toEqual([]);
  });

  test("a private key from a sensitive variable, a token port and a plain %RAND% script path are accepted", () => {
    const { stack } = newStack();
    const key = new TerraformVariable(stack, "ssh_key", { type: "string", sensitive: true });
    new K3sServer(stack, "s", { host: host({ ssh: { ...ssh, privateKey: key.stringValue, port: Fn.tonumber("2222"), scriptPath: "/var/tmp/cdktf-k3s/terraform_%RAND%.sh" } }) });
    expect(validationErrors(stack)).toEqual([]);
  });

  test("IPv6 addresses and CIDRs are accepted", () => {
    const { stack } = newStack();
    new K3sServer(stack, "s", { host: host({ address: "2001:db8::10" }), tlsSans: ["2001:db8::1"], clusterCidr: "10.42.0.0/16" });
    expect(validationErrors(stack)).toEqual([]);
  });
});

const warningsOf = (stack: TerraformStack) => stack.node.findAll().flatMap((c) => c.node.metadata)
  .filter((m) => m.type === "@cdktf/warn").map((m) => String(m.data));

describe("the node list and the settings that must agree", () => {
  const cluster = (app: App = Testing.app()) => {
    const stack = new TerraformStack(app, "cluster");
    const server = new K3sServer(stack, "s", { host: host() });
    const a = new K3sAgent(stack, "a", { server, host: host({ address: "203.0.113.11" }) });
    const b = new K3sAgent(stack, "b", { server, host: host({ address: "203.0.113.12", behindNat: true }) });
    return { app, stack, server, a, b };
  };
  const all = (app: App) => app.node.findAll().flatMap((c) => c.node.validate()).join("\n");

  test("agents register with their server; PeerFirewall and KiloMesh default to the whole cluster", () => {
    const { app, stack, server, a, b } = cluster();
    expect(server.clusterNodes).toEqual([server, a, b]);
    const fw = new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"] });
    expect(fw.nodes).toEqual([server, a, b]);
    const mesh = new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server });
    expect(mesh.nodes).toEqual([server, a, b]);
    expect(all(app)).toBe("");
  });

  type ClusterCase = [string, (c: ReturnType<typeof cluster>) => void, RegExp];
  const cases: ClusterCase[] = [
    ["a PeerFirewall without the server", ({ stack, a, b }) => new PeerFirewall(stack, "fw", { nodes: [a, b], adminCidrs: ["198.51.100.0/24"] }),
      /PeerFirewall "cluster\/fw": nodes: cluster\/s \(the server\) is missing; leave nodes out to cover the whole cluster, or add it/],
    ["a PeerFirewall without an agent", ({ stack, server, a }) => new PeerFirewall(stack, "fw", { nodes: [server, a], adminCidrs: ["198.51.100.0/24"] }),
      /PeerFirewall "cluster\/fw": nodes: cluster\/b \(joins cluster\/s\) is missing/],
    ["a PeerFirewall created before an agent", ({ stack, server }) => {
      new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"] });
      new K3sAgent(stack, "late", { server, host: host({ address: "203.0.113.13" }) });
    }, /PeerFirewall "cluster\/fw": nodes: cluster\/late joined cluster\/s after this PeerFirewall was created, so it is not covered; create the PeerFirewall after every K3sAgent/],
    ["a KiloMesh without a behindNat agent", ({ app, server, a }) => new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server, nodes: [a] }),
      /KiloMesh "mesh\/kilo": nodes: cluster\/b \(joins cluster\/s\) is missing; leave nodes out to cover the whole cluster/],
    ["a KiloMesh created before an agent", ({ app, stack, server }) => {
      new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server });
      new K3sAgent(stack, "late", { server, host: host({ address: "203.0.113.13" }) });
    }, /KiloMesh "mesh\/kilo": nodes: cluster\/late joined cluster\/s after this KiloMesh was created/],
    ["two PeerFirewalls over one node", ({ stack, server }) => {
      new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"] });
      new PeerFirewall(stack, "fw2", { server, adminCidrs: ["198.51.100.0/24"] });
    }, /PeerFirewall "cluster\/fw": nodes: cluster\/s, cluster\/a, cluster\/b also covered by PeerFirewall cluster\/fw2; two firewalls on one host share one rule tag/],
    ["a firewall's WireGuard port that the mesh does not use", ({ app, stack, server }) => {
      new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"] });
      new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server, wireguardPort: 51821 });
    }, /PeerFirewall "cluster\/fw": wireguardPort: 51820 differs from KiloMesh mesh\/kilo's wireguardPort 51821; they must agree/],
    ["a firewall's Kilo subnet that the mesh does not use", ({ app, stack, server }) => {
      new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"], kiloSubnet: "10.14.0.0/16" });
      new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server });
    }, /PeerFirewall "cluster\/fw": kiloSubnet: 10\.14\.0\.0\/16 differs from KiloMesh mesh\/kilo's wireguardSubnet 10\.4\.0\.0\/16/],
    ["a firewall's pod network that is not the server's", ({ stack, server }) => new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"], podCidr: "10.62.0.0/16" }),
      /PeerFirewall "cluster\/fw": podCidr: 10\.62\.0\.0\/16 differs from cluster\/s's clusterCidr 10\.42\.0\.0\/16/],
    ["a mesh's service network that is not the server's", ({ app, server }) => new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server, serviceCidr: "10.53.0.0/16" }),
      /KiloMesh "mesh\/kilo": serviceCidr: 10\.53\.0\.0\/16 differs from cluster\/s's serviceCidr 10\.43\.0\.0\/16; leave serviceCidr out/],
    ["two nodes at one address", ({ stack, server }) => new K3sAgent(stack, "twin", { server, host: host({ address: "203.0.113.11" }) }),
      /K3sServer "cluster\/s": cluster: cluster\/a and cluster\/twin both have host\.address "203\.0\.113\.11" and the same SSH target; each node needs a machine of its own/],
    ["two nodes at one address with different SSH ports", ({ stack, server }) => new K3sAgent(stack, "twin", { server, host: host({ address: "203.0.113.11", ssh: { ...ssh, port: 2222 } }) }),
      /K3sServer "cluster\/s": cluster: cluster\/a and cluster\/twin both have host\.address "203\.0\.113\.11"; peers and Kilo tell nodes apart by address\. Only nodes behind one NAT may share it/],
    ["an agent newer than its server", ({ stack, server }) => new K3sAgent(stack, "new", { server, host: host({ address: "203.0.113.14" }), version: "v1.99.0+k3s1" }),
      /K3sAgent "cluster\/new": version: v1\.99\.0\+k3s1 is newer than its server cluster\/s's v1\.\d+\.\d+\+k3s\d+; a kubelet may not be newer than its API server/],
  ];

  test.each(cases)("%s", (_name, build, message) => {
    const c = cluster();
    build(c);
    expect(all(c.app)).toMatch(message);
  });

  test("nodes behind one NAT may share an address; an older agent is fine", () => {
    const { app, stack, server } = cluster();
    new K3sAgent(stack, "pi2", { server, host: host({ address: "203.0.113.12", behindNat: true, ssh: { ...ssh, port: 2222 } }), version: "v1.30.0+k3s1" });
    new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"], wireguardPort: 51821 });
    new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server, wireguardPort: 51821 });
    expect(all(app)).toBe("");
  });
});

describe("messages: one right message per mistake", () => {
  test("a typo'd IPv4 address gets one message, not a second one about DNS names", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: host() });
    new K3sAgent(stack, "a", { server, host: host({ address: "203.0.113.300" }) });
    new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"] });
    const errors = validationErrors(stack).filter((e) => e.includes("203.0.113.300"));
    expect(errors).toEqual(['K3sAgent "cluster/a": host.address: "203.0.113.300" is not a valid IPv4 address']);
  });

  test("an address with a port gets the port message only, also from PeerFirewall", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: host() });
    new K3sAgent(stack, "a", { server, host: host({ address: "203.0.113.11:2222" }) });
    new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"] });
    expect(validationErrors(stack).filter((e) => e.includes("2222"))).toEqual([
      'K3sAgent "cluster/a": host.address: "203.0.113.11:2222" has a port; drop the port ("203.0.113.11") and use ssh.port for the SSH port',
    ]);
  });

  test("JavaScript callers without ssh, host or server get the bad-input message, not a TypeError", () => {
    const { stack } = newStack();
    expect(() => new K3sServer(stack, "s", { host: { address: "203.0.113.10" } } as any))
      .toThrow('K3sServer "cluster/s": host.ssh is required: give at least { privateKeyPath } or { agent: true }');
    expect(() => new K3sServer(stack, "s2", {} as any)).toThrow(/K3sServer "cluster\/s2": host is required/);
    const server = new K3sServer(stack, "s3", { host: host() });
    expect(() => new K3sAgent(stack, "a", { server, host: { address: "203.0.113.11" } } as any))
      .toThrow('K3sAgent "cluster/a": host.ssh is required');
    expect(() => new K3sAgent(stack, "a2", { host: host({ address: "203.0.113.12" }) } as any))
      .toThrow('K3sAgent "cluster/a2": server: pass the K3sServer construct this agent joins');
  });

  test("a node that is other nodes' bastion on another port opens that port to the admin networks", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: host() });
    const hidden = new K3sAgent(stack, "hidden", { server, host: host({ address: "203.0.113.11", ssh: { ...ssh, bastion: { host: "203.0.113.10", port: 2222 } } }) });
    const fw = new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"] });
    const ssh22 = fw.rulesFor(server).filter((r) => r.purpose === "ssh").map((r) => `${r.port} ${r.from}`);
    expect(ssh22).toEqual(["22 198.51.100.0/24", "2222 198.51.100.0/24"]);
    expect(fw.rulesFor(hidden).filter((r) => r.purpose === "ssh").map((r) => `${r.port} ${r.from}`)).toEqual(["22 198.51.100.0/24", "22 203.0.113.10"]);
  });

  test("a node at a private ssh.host behind a bastion: a warning says what is allowed", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "s", { host: host() });
    new K3sAgent(stack, "hidden", { server, host: host({ address: "203.0.113.11", ssh: { ...ssh, host: "10.0.0.5", bastion: { host: "198.51.100.9" } } }) });
    new PeerFirewall(stack, "fw", { server, adminCidrs: ["198.51.100.0/24"] });
    expect(warningsOf(stack).join("\n")).toMatch(/PeerFirewall "cluster\/fw": cluster\/hidden is reached at the private address 10\.0\.0\.5 through bastion 198\.51\.100\.9\. Its firewall lets SSH in from the admin networks and from 198\.51\.100\.9 only/);
  });
});
