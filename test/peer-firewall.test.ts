/**
 * PeerFirewall at synth: one converge step per node, its trigger a digest of that node's rules
 * only, ordered before the node's K3s install without ever re-running it, and validation.
 */
import { mkdtempSync, rmSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { App, Fn, TerraformStack, TerraformVariable } from "cdktf";
import { K3sAgent, K3sServer, KiloMesh, MeshGranularity, PeerFirewall, Protocol, RuleAction, TrafficDirection } from "../lib";
import { PeerFirewallProps } from "../lib/constructs/peer-firewall";
import { logicalId, newStack, provisioners, resourceOf, synth, validationErrors } from "./util/synth";

// A fake key (not key material), built at run time so no key block is ever committed.
const FAKE_KEY_HEADER = ["-----BEGIN", "OPENSSH", "PRIVATE", "KEY-----"].join(" ");

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
const ADMIN = "198.51.100.7/32";

function cluster(agentCount = 2, fw: Partial<PeerFirewallProps> = {}, opts: { key?: string } = {}) {
  const { app, stack } = newStack();
  const s = opts.key ? { privateKey: opts.key, privateKeyPath: "~/.ssh/id_ed25519" } : ssh;
  const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh: s } });
  const agents = Array.from({ length: agentCount }, (_, i) =>
    new K3sAgent(stack, `agent-${i}`, { server, host: { address: `203.0.113.${11 + i}`, ssh: s } }));
  const firewall = new PeerFirewall(stack, "firewall", { nodes: [server, ...agents], adminCidrs: [ADMIN], ...fw });
  return { app, stack, server, agents, firewall, out: synth(stack) };
}

function triggersOf(out: any, name: string): any {
  return resourceOf(out, "terraform_data", `firewall_${name}`).triggers_replace;
}

function installOf(out: any, name: string): any {
  return resourceOf(out, "terraform_data", `${name}_install`);
}

describe("PeerFirewall", () => {
  test("one terraform_data step per node running the converge script over the node's SSH connection", () => {
    const { out } = cluster(2);
    expect(Object.keys(out.resource.terraform_data).filter((k) => k.startsWith("firewall_"))).toHaveLength(3);
    // Terraform's built-in terraform_data: the firewall needs no provider.
    expect(out.provider?.null).toBeUndefined();
    expect(out.terraform?.required_providers?.null).toBeUndefined();
    for (const name of ["server", "agent-0", "agent-1"]) {
      const r = resourceOf(out, "terraform_data", `firewall_${name}`);
      expect(r.connection).toMatchObject({ type: "ssh", host: `203.0.113.${name === "server" ? 10 : 11 + Number(name.slice(-1))}`, user: "root" });
      const [p] = provisioners(r);
      expect(p.type).toBe("remote-exec");
      // The shared converge program (one Terraform local), then this node's rules.
      expect(p.inline).toHaveLength(2);
      expect(p.inline[0]).toMatch(/^\$\{local\.firewall_converge-program_[0-9A-F]+\}$/);
      expect(p.inline[1]).toMatch(/^# the rules of node cluster\/(server|agent-\d)\nconverge_firewall <<'CDKTF_K3S_KILO_RULES'\n\{"sources":/);
      const data = JSON.parse(p.inline[1].split("\n")[2]);
      expect(data.rules[0]).toEqual(["allow", "proto", "tcp", "from", ADMIN, "to", "any", "port", "22"]);
      // The peers: the cluster's shared address list without this node's own address.
      const self = name === "server" ? 0 : 1 + Number(name.slice(-1));
      expect(data.sources[0]).toEqual({ shared: [self] });
    }
    // The program is emitted once for all nodes (the other locals are the K3s node scripts' programs).
    const locals = Object.entries((out as any).locals ?? {}).filter(([k]) => !k.startsWith("k3s-script-")).map(([, t]) => t) as string[];
    expect(locals).toHaveLength(1);
    expect(locals[0]).toMatch(/^#!\/bin\/sh\n# cdktf-k3s-kilo: converge the host firewall/);
    expect(locals[0]).toContain("ufw --force enable");
    expect(locals[0]).toContain("import ufw.frontend");
    expect(locals[0]).toContain(`FIREWALL_SHARED_SOURCES=$(cat <<'CDKTF_K3S_KILO_SOURCES'\n["203.0.113.10","203.0.113.11","203.0.113.12"]\n`);
    // Shell `${...}` is escaped for Terraform.
    expect(locals[0]).toContain('"$${ufw_py:-/nonexistent}"');
    expect(locals[0]).not.toMatch(/[^$]\$\{ufw_py/);
  });

  test("triggers hold a digest of the node's rules and nothing else: no key, no address, no script", () => {
    const key = `${FAKE_KEY_HEADER}\nsecretkeymaterial\n-----END OPENSSH PRIVATE KEY-----`;
    const { out } = cluster(2, {}, { key });
    for (const name of ["server", "agent-0", "agent-1"]) {
      const t = triggersOf(out, name);
      expect(Object.keys(t)).toEqual(["text"]);
      expect(t.text).toMatch(/^[0-9a-f]{64}$/);
      const r = resourceOf(out, "terraform_data", `firewall_${name}`);
      // The key may only appear in the connection block, which Terraform never stores.
      const { connection, ...rest } = r;
      expect(JSON.stringify(rest)).not.toContain("secretkeymaterial");
      expect(JSON.stringify(connection)).toContain("secretkeymaterial");
    }
    // Different nodes, different rules, different digests.
    expect(triggersOf(out, "server").text).not.toBe(triggersOf(out, "agent-0").text);
  });

  test("convergeOnEveryApply: each firewall step's trigger also holds timestamp(), so every apply re-runs it; the installs' triggers do not change", () => {
    const plain = cluster(2).out;
    const every = cluster(2, { convergeOnEveryApply: true }).out;
    for (const name of ["server", "agent-0", "agent-1"]) {
      expect(triggersOf(plain, name).run).toBeUndefined();
      expect(triggersOf(every, name)).toEqual({ text: triggersOf(plain, name).text, run: "${timestamp()}" });
      expect(installOf(every, name).triggers_replace).toEqual(installOf(plain, name).triggers_replace);
    }
  });

  test("each node's K3s install waits for that node's firewall", () => {
    const { out } = cluster(2);
    for (const name of ["server", "agent-0", "agent-1"]) {
      const fw = `terraform_data.${logicalId(out, "terraform_data", `firewall_${name}`)}`;
      expect(installOf(out, name).depends_on).toContain(fw);
      // And never on another node's firewall (that would couple installs to peers' firewalls).
      const others = (installOf(out, name).depends_on as string[]).filter((d) => d.startsWith("terraform_data.firewall_") && d !== fw);
      expect(others).toEqual([]);
    }
  });

  test("the install steps' triggers do not change whether or not a firewall exists", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
    new K3sAgent(stack, "agent-0", { server, host: { address: "203.0.113.11", ssh } });
    const bare = synth(stack);
    const { out } = cluster(1);
    for (const name of ["server", "agent-0"]) {
      expect(installOf(out, name).triggers_replace).toEqual(installOf(bare, name).triggers_replace);
    }
  });

  test("changing the admin networks changes every firewall trigger and no install trigger", () => {
    const a = cluster(2).out;
    const b = cluster(2, { adminCidrs: ["192.0.2.0/24"] }).out;
    for (const name of ["server", "agent-0", "agent-1"]) {
      expect(triggersOf(b, name)).not.toEqual(triggersOf(a, name));
      expect(installOf(b, name).triggers_replace).toEqual(installOf(a, name).triggers_replace);
      expect(resourceOf(b, "terraform_data", `${name}_membership`).triggers_replace)
        .toEqual(resourceOf(a, "terraform_data", `${name}_membership`).triggers_replace);
    }
  });

  test("extra API networks re-run the servers' firewalls only", () => {
    const a = cluster(2).out;
    const b = cluster(2, { apiCidrs: ["192.0.2.0/24"] }).out;
    expect(triggersOf(b, "server")).not.toEqual(triggersOf(a, "server"));
    expect(triggersOf(b, "agent-0")).toEqual(triggersOf(a, "agent-0"));
  });

  test("adding an agent changes every firewall's trigger and no other node's install trigger", () => {
    const a = cluster(2).out;
    const b = cluster(3).out;
    for (const name of ["server", "agent-0", "agent-1"]) {
      expect(triggersOf(b, name)).not.toEqual(triggersOf(a, name));
      expect(installOf(b, name).triggers_replace).toEqual(installOf(a, name).triggers_replace);
    }
    expect(resourceOf(b, "terraform_data", "firewall_agent-2")).toBeDefined();
  });

  test("rulesFor gives each node's rules as data", () => {
    const { server, agents, firewall } = cluster(2);
    const rules = firewall.rulesFor(server);
    expect(rules[0]).toMatchObject({ purpose: "ssh", action: RuleAction.ALLOW, protocol: Protocol.TCP, port: "22", from: ADMIN });
    expect(rules.filter((r) => r.port === "6443").map((r) => r.from)).toEqual(["203.0.113.11", "203.0.113.12", ADMIN]);
    expect(firewall.rulesFor(agents[0]).some((r) => r.port === "6443")).toBe(false);
    expect(rules.some((r) => r.direction === TrafficDirection.ROUTED && r.inInterface === "kube-bridge")).toBe(true);
    expect(rules.every((r) => /^cdktf-k3s-kilo:[0-9a-f]{16}$/.test(r.tag!))).toBe(true);
    expect(firewall.firewallOf(server)).toBeDefined();
  });

  test("pod and service networks come from the server unless given", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh }, clusterCidr: "10.52.0.0/16", serviceCidr: "10.53.0.0/16" });
    const fw = new PeerFirewall(stack, "fw", { nodes: [server], adminCidrs: [ADMIN], kiloSubnet: "10.14.0.0/16" });
    const froms = fw.rulesFor(server).filter((r) => r.inInterface).map((r) => r.from);
    expect(new Set(froms)).toEqual(new Set(["10.52.0.0/16", "10.53.0.0/16", "10.14.0.0/16"]));
    const fw2 = new PeerFirewall(stack, "fw2", { nodes: [server], adminCidrs: [ADMIN], podCidr: "10.62.0.0/16" });
    expect(fw2.rulesFor(server).filter((r) => r.inInterface).map((r) => r.from)).toContain("10.62.0.0/16");
  });

  test("addresses from another resource: rules keep the token, the digest includes its value via Terraform", () => {
    const { stack } = newStack();
    const droplet = new TerraformVariable(stack, "droplet", { type: "map(string)" });
    const address = Fn.lookup(droplet.value, "ip", "203.0.113.99");
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
    const agent = new K3sAgent(stack, "agent", { server, host: { address, ssh } });
    const fw = new PeerFirewall(stack, "firewall", { nodes: [server, agent], adminCidrs: [ADMIN] });
    expect(validationErrors(stack)).toEqual([]);
    const out = synth(stack);
    const t = triggersOf(out, "server");
    expect(t.text).toMatch(/^[0-9a-f]{64}$/);
    expect(t.values).toMatch(/^\$\{sha256\(join\("\\n", \[lookup\(var\.droplet, "ip", "203\.0\.113\.99"\)/);
    // The rule data encodes the value with Terraform's jsonencode() at apply time: no newline or
    // quote in it can end the here-document or reach the shell.
    const script = provisioners(resourceOf(out, "terraform_data", "firewall_server"))[0].inline[1];
    expect(script).toContain(`\${jsonencode(lookup(var.droplet, "ip", "203.0.113.99"))}`);
    // The rule's tag is computed on the host once the value is known.
    const wg = fw.rulesFor(server).find((r) => r.purpose === "wireguard")!;
    expect(wg.tag).toBeUndefined();
  });

  test("warns at synth when no admin network is given", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
    new PeerFirewall(stack, "firewall", { nodes: [server] });
    const warnings = stack.node.findAll().flatMap((c) => c.node.metadata)
      .filter((m) => m.type === "@cdktf/warn").map((m) => String(m.data));
    expect(warnings.join("\n")).toMatch(/PeerFirewall "cluster\/firewall": no adminCidrs, so SSH \(22\/tcp, rate-limited\) stays open to the whole Internet/);
  });

  describe("rate-limited SSH to the first server and the agents' rollout sessions", () => {
    const findings = (agentCount: number, fw: Partial<PeerFirewallProps>) => {
      const { stack } = newStack();
      const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
      for (let i = 0; i < agentCount; i++) new K3sAgent(stack, `agent-${i}`, { server, host: { address: `203.0.113.${11 + i}`, ssh } });
      new PeerFirewall(stack, "firewall", { server, ...fw });
      let errors: string[] = [];
      try { synth(stack); } catch (e) { errors = [(e as Error).message]; }
      errors.push(...validationErrors(stack));
      const warnings = stack.node.findAll().flatMap((c) => c.node.metadata)
        .filter((m) => m.type === "@cdktf/warn").map((m) => String(m.data)).filter((w) => /opens an SSH session/.test(w));
      return { errors: errors.filter((e) => /opens an SSH session/.test(e)), warnings };
    };

    test.each([
      ["no adminCidrs", {}, "adminCidrs: no adminCidrs are given"],
      ["rateLimitSsh", { adminCidrs: [ADMIN], rateLimitSsh: true }, "rateLimitSsh: true rate-limits"],
    ])("%s with 5 agents is an error naming the field and the fix", (_n, fw, field) => {
      const { errors } = findings(5, fw);
      expect(errors.join("\n")).toContain(`PeerFirewall "cluster/firewall": ${field}`);
      expect(errors.join("\n")).toMatch(/each of the 5 agent\(s\) of cluster\/server opens an SSH session .*15 sessions there in a fresh deploy.*would fail half-way\. Set adminCidrs to the networks you deploy from/);
    });

    test("fewer agents: a warning, not an error", () => {
      const { errors, warnings } = findings(2, {});
      expect(errors).toEqual([]);
      expect(warnings.join("\n")).toMatch(/adminCidrs: .*each of the 2 agent\(s\).*9 sessions there in a fresh deploy.*fails when they come too close together/);
    });

    test("admin networks without rateLimitSsh: neither", () => {
      const { errors, warnings } = findings(8, { adminCidrs: [ADMIN] });
      expect(errors).toEqual([]);
      expect(warnings).toEqual([]);
    });
  });

  test("validation names the construct, the field and the fix", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
    const named = new K3sAgent(stack, "named", { server, host: { address: "node1.example.com", ssh } });
    const viaBastion = new K3sAgent(stack, "hidden", { server, host: { address: "203.0.113.30", ssh: { ...ssh, bastion: { host: "jump.example.com" } } } });
    new PeerFirewall(stack, "firewall", {
      nodes: [server, named, viaBastion, server],
      adminCidrs: ["198.51.100.7", "198.51.100.0/33"],
      apiCidrs: ["10.0.0.1/8"],
      wireguardPort: 70000,
      podCidr: "10.42.0.0",
      kiloSubnet: "banana",
      extraRules: [
        { port: 0 },
        { port: 3000, endPort: 2000 },
        { port: 5000, endPort: 5010, protocol: Protocol.ANY },
        { port: 80, from: ["example.com"] },
        { port: 81, protocol: "sctp" as Protocol },
      ],
    });
    const errors = validationErrors(stack).filter((e) => e.startsWith("PeerFirewall"));
    const expected = [
      /nodes: a node is listed more than once/,
      /nodes: cluster\/named has host.address "node1.example.com", a DNS name: ufw rules need IP addresses/,
      /nodes: cluster\/hidden is reached through bastion "jump.example.com", a DNS name/,
      /adminCidrs\[0\]: "198.51.100.7" is not a CIDR block; add the prefix length \(for one address: 198.51.100.7\/32\)/,
      /adminCidrs\[1\]: "198.51.100.0\/33" is not a CIDR block/,
      /apiCidrs\[0\]: "10.0.0.1\/8" has host bits set; did you mean 10.0.0.0\/8\?/,
      /wireguardPort: 70000 is not a port number/,
      /podCidr: "10.42.0.0" is not a CIDR block/,
      /kiloSubnet: "banana" is not a CIDR block/,
      /extraRules\[0\].port: 0 is not a port number/,
      /extraRules\[1\].endPort: 2000 is below port 3000/,
      /extraRules\[2\].protocol: ufw needs a protocol for a port range/,
      /extraRules\[3\].from\[0\]: "example.com" is neither an IP address nor a CIDR block/,
      /extraRules\[4\].protocol: "sctp" is not a Protocol/,
    ];
    for (const re of expected) expect(errors.find((e) => re.test(e))).toMatch(/^PeerFirewall "cluster\/firewall": /);
    expect(errors).toHaveLength(expected.length);
  });

  test("a location mesh with two nodes in one location is warned about: IPIP from a forged private address passes the guard", () => {
    const warningsFor = (granularity: MeshGranularity, locations: [string, string]) => {
      const app = new App({ outdir: mkdtempSync(join(tmpdir(), "pf-ipip-")) });
      const stack = new TerraformStack(app, "cluster");
      const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh, location: locations[0] } });
      new K3sAgent(stack, "agent", { server, host: { address: "203.0.113.11", ssh, location: locations[1] } });
      new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server, meshGranularity: granularity });
      new PeerFirewall(stack, "firewall", { server, adminCidrs: [ADMIN] });
      app.synth();
      rmSync(app.outdir, { recursive: true, force: true });
      return stack.node.findAll().flatMap((c) => c.node.metadata)
        .filter((m) => m.type === "@cdktf/warn").map((m) => String(m.data)).filter((w) => /IPIP/.test(w));
    };
    const warned = warningsFor(MeshGranularity.LOCATION, ["dc1", "dc1"]);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/^PeerFirewall "cluster\/firewall": KiloMesh mesh\/kilo uses MeshGranularity.LOCATION, so nodes of one location \("dc1"\) exchange .* forges a node's private address can reach pods, ClusterIPs and NodePorts past this firewall's guard. Use MeshGranularity.FULL/);
    expect(warningsFor(MeshGranularity.LOCATION, ["dc1", "dc2"])).toEqual([]);
    expect(warningsFor(MeshGranularity.FULL, ["dc1", "dc1"])).toEqual([]);
  });

  test("a location mesh whose kg routes pod traffic unencapsulated inside a location is refused: the guard would drop it", () => {
    const errorsFor = (granularity: MeshGranularity, extraArgs: string[]) => {
      const app = new App();
      const stack = new TerraformStack(app, "cluster");
      const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh, location: "dc1" } });
      new K3sAgent(stack, "agent", { server, host: { address: "203.0.113.11", ssh, location: "dc1" } });
      new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server, meshGranularity: granularity, extraArgs });
      new PeerFirewall(stack, "firewall", { server, adminCidrs: [ADMIN] });
      return validationErrors(stack).filter((e) => e.startsWith("PeerFirewall"));
    };
    const variable = (app: string) => `\${TfToken[TOKEN.${app}]}`;
    for (const flag of ["--encapsulate=never", "--encapsulate=crosssubnet", "--encapsulate", `--encapsulate=${variable("1")}`]) {
      const errors = errorsFor(MeshGranularity.LOCATION, ["--log-level=info", flag]);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/^PeerFirewall "cluster\/firewall": KiloMesh mesh\/kilo's extraArgs "--encapsulate[^"]*" with MeshGranularity.LOCATION: kg then routes pod traffic between nodes of one location unencapsulated/);
      expect(errors[0]).toMatch(/Remove the flag: Kilo's default, --encapsulate=always, carries that traffic in tunl0$/);
    }
    expect(errorsFor(MeshGranularity.LOCATION, ["--encapsulate=always"])).toEqual([]);
    // A full mesh puts every node in a location of its own: nothing travels unencapsulated.
    expect(errorsFor(MeshGranularity.FULL, ["--encapsulate=never"])).toEqual([]);
  });

  test("no nodes is an error; tokens pass validation", () => {
    const { stack } = newStack();
    new PeerFirewall(stack, "empty", { nodes: [] });
    const droplet = new TerraformVariable(stack, "droplet", { type: "map(string)" });
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
    new PeerFirewall(stack, "tokens", {
      nodes: [server],
      adminCidrs: [Fn.lookup(droplet.value, "cidr", "")],
      extraRules: [{ port: 443, from: [Fn.lookup(droplet.value, "lb", "")] }],
    });
    const errors = validationErrors(stack).filter((e) => e.startsWith("PeerFirewall"));
    expect(errors).toEqual(['PeerFirewall "cluster/empty": nodes: give the cluster\'s server (server: every agent that joins it is covered) or every K3sServer and K3sAgent of the cluster']);
  });

  describe("a firewall and its nodes in different stacks: the advice given synthesizes", () => {
    /** A server in "cluster", one agent in `agentStack`, the firewall in `firewallStack`; synthesizes into a temporary directory. */
    function build(agentStack: "cluster" | "workers", firewallStack: "cluster" | "workers") {
      const outdir = mkdtempSync(join(tmpdir(), "firewall-stacks-"));
      const app = new App({ outdir });
      const stacks = { cluster: new TerraformStack(app, "cluster"), workers: new TerraformStack(app, "workers") };
      new TerraformVariable(stacks.workers, "unused", {}); // the workers stack exists whether or not a node is there
      const server = new K3sServer(stacks.cluster, "server", { host: { address: "203.0.113.10", ssh } });
      new K3sAgent(stacks[agentStack], "agent-0", { server, host: { address: "203.0.113.11", ssh } });
      new PeerFirewall(stacks[firewallStack], "firewall", { server, adminCidrs: [ADMIN] });
      const silenced = jest.spyOn(process.stderr, "write").mockImplementation(() => true);
      try {
        app.synth();
        return undefined;
      } catch (e) {
        return String((e as Error).message);
      } finally {
        silenced.mockRestore();
        rmSync(outdir, { recursive: true, force: true });
      }
    }

    test("nodes in two stacks: move the agents to their server's stack, and the firewall there too", () => {
      const error = build("workers", "workers");
      expect(error).toMatch(/PeerFirewall "workers\/firewall": nodes: its nodes are in 2 stacks, "cluster" \(cluster\/server\) and "workers" \(workers\/agent-0\), but a firewall and the nodes it covers must share one: .*\(a circular dependency\)\. Create workers\/agent-0 in stack "cluster", the stack of cluster\/server \(an agent belongs in its server's stack\), and this firewall there too/);
      expect(build("workers", "cluster")).toMatch(/PeerFirewall "cluster\/firewall": nodes: its nodes are in 2 stacks, .*Create workers\/agent-0 in stack "cluster", the stack of cluster\/server \(an agent belongs in its server's stack\)$/m);
      // Following it synthesizes.
      expect(build("cluster", "cluster")).toBeUndefined();
    });

    test("every node in one stack, the firewall in another: create the firewall beside them, which synthesizes", () => {
      expect(build("cluster", "workers")).toMatch(/PeerFirewall "workers\/firewall": nodes: every node it covers is in stack "cluster" but this firewall is in "workers": create the firewall in stack "cluster", beside its nodes/);
      expect(build("cluster", "cluster")).toBeUndefined();
    });
  });
});
