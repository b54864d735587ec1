/**
 * The peer firewall as data: rule sets per node for the cluster shapes the project cares about,
 * before anything is rendered to shell.
 */
import {
  FirewallCluster, FirewallNode, NodeFirewallRule, nodeRuleSet, clusterRuleSets, Protocol, RuleAction,
  ruleSetText, ruleTag, ruleWords, TAG_PREFIX, TrafficDirection,
} from "../lib/render/firewall-rules";

const ADMIN = "198.51.100.7/32";

function node(name: string, address: string, role: "server" | "agent" = "agent", extra: Partial<FirewallNode> = {}): FirewallNode {
  return { name, address, role, ...extra };
}

/** The article's cluster: one server and five agents. */
function article(extra: Partial<FirewallCluster> = {}): FirewallCluster {
  return {
    nodes: [node("server", "203.0.113.10", "server"), ...[1, 2, 3, 4, 5].map((i) => node(`agent-${i}`, `203.0.113.${10 + i}`))],
    adminCidrs: [ADMIN],
    ...extra,
  };
}

/** One line per rule, easy to compare: "purpose proto port from [on iface] [routed]". */
function summary(rules: NodeFirewallRule[]): string[] {
  return rules.map((r) => [
    r.purpose, r.action === RuleAction.LIMIT ? "limit" : undefined, r.protocol, r.port ?? "*", "from", r.from ?? "any",
    r.inInterface ? `on ${r.inInterface}` : undefined, r.direction === TrafficDirection.ROUTED ? "routed" : undefined,
  ].filter((x) => x !== undefined).join(" "));
}

function sources(rules: NodeFirewallRule[], purpose: string, port?: string): string[] {
  return rules.filter((r) => r.purpose === purpose && (port === undefined || r.port === port)).map((r) => r.from ?? "any");
}

const KILO_RULES = [
  "kilo-interface any * from 10.42.0.0/16 on kilo0",
  "kilo-interface any * from 10.43.0.0/16 on kilo0",
  "kilo-interface any * from 10.4.0.0/16 on kilo0",
  "kilo-interface any * from 10.42.0.0/16 on kube-bridge",
  "kilo-interface any * from 10.43.0.0/16 on kube-bridge",
  "kilo-forward any * from 10.42.0.0/16 on kube-bridge routed",
  "kilo-forward any * from 10.42.0.0/16 on kilo0 routed",
  "kilo-forward any * from 10.4.0.0/16 on kilo0 routed",
];

describe("peer firewall rule sets", () => {
  test("a single server: SSH and the API from the admin network, the Kilo interfaces, nothing else", () => {
    const set = nodeRuleSet({ nodes: [node("server", "203.0.113.10", "server")], adminCidrs: [ADMIN] }, "server");
    expect(set.defaults).toEqual({ incoming: "deny", routed: "deny" });
    expect(summary(set.rules)).toEqual([
      `ssh tcp 22 from ${ADMIN}`,
      `kube-apiserver tcp 6443 from ${ADMIN}`,
      ...KILO_RULES,
    ]);
  });

  test("the article's 1+5 cluster: the server lets in its five agents and the admin network", () => {
    const sets = clusterRuleSets(article());
    expect(sets.map((s) => s.node)).toEqual(["server", "agent-1", "agent-2", "agent-3", "agent-4", "agent-5"]);
    const agents = [11, 12, 13, 14, 15].map((i) => `203.0.113.${i}`);
    const server = sets[0].rules;
    expect(summary(server)).toEqual([
      `ssh tcp 22 from ${ADMIN}`,
      ...agents.map((a) => `wireguard udp 51820 from ${a}`),
      ...agents.map((a) => `kube-apiserver tcp 6443 from ${a}`),
      `kube-apiserver tcp 6443 from ${ADMIN}`,
      ...agents.map((a) => `kubelet tcp 10250 from ${a}`),
      ...KILO_RULES,
    ]);
    // No etcd with one server; the admin network never reaches WireGuard or the kubelet.
    expect(server.some((r) => r.purpose === "etcd")).toBe(false);
    expect(sources(server, "wireguard")).not.toContain(ADMIN);
    expect(sources(server, "kubelet")).not.toContain(ADMIN);
  });

  test("an agent in the 1+5 cluster: peers on WireGuard and the kubelet, no API port", () => {
    const set = nodeRuleSet(article(), "agent-3");
    const peers = ["203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.14", "203.0.113.15"];
    expect(summary(set.rules)).toEqual([
      `ssh tcp 22 from ${ADMIN}`,
      ...peers.map((a) => `wireguard udp 51820 from ${a}`),
      ...peers.map((a) => `kubelet tcp 10250 from ${a}`),
      ...KILO_RULES,
    ]);
    // Never from itself.
    expect(set.rules.some((r) => r.from === "203.0.113.13")).toBe(false);
  });

  test("nothing is open to anywhere but SSH (rate-limited), and nothing names Kilo's 1107", () => {
    for (const cluster of [article(), article({ adminCidrs: [] })]) {
      for (const set of clusterRuleSets(cluster)) {
        expect(set.rules.some((r) => r.port === "1107")).toBe(false);
        const open = set.rules.filter((r) => r.from === undefined);
        for (const r of open) expect([r.purpose, r.action]).toEqual(["ssh", RuleAction.LIMIT]);
        // Cluster-internal ranges are only ever trusted on Kilo's interfaces.
        for (const r of set.rules.filter((x) => ["10.42.0.0/16", "10.43.0.0/16", "10.4.0.0/16"].includes(x.from ?? ""))) {
          expect(["kilo0", "kube-bridge"]).toContain(r.inInterface);
        }
      }
    }
  });

  test("without admin networks SSH is open to anywhere, rate-limited, and the API only to peers", () => {
    const set = nodeRuleSet(article({ adminCidrs: undefined }), "server");
    expect(summary(set.rules)[0]).toBe("ssh limit tcp 22 from any");
    expect(sources(set.rules, "ssh")).toEqual(["any"]);
    expect(sources(set.rules, "kube-apiserver")).toEqual(["203.0.113.11", "203.0.113.12", "203.0.113.13", "203.0.113.14", "203.0.113.15"]);
  });

  test("extra API networks reach 6443 on servers only, never SSH", () => {
    const c = article({ adminCidrs: [ADMIN, "2001:db8::/48"], apiCidrs: ["192.0.2.0/24"] });
    const server = nodeRuleSet(c, "server").rules;
    expect(sources(server, "ssh")).toEqual([ADMIN, "2001:db8::/48"]);
    expect(sources(server, "kube-apiserver").slice(-3)).toEqual([ADMIN, "2001:db8::/48", "192.0.2.0/24"]);
    const agent = nodeRuleSet(c, "agent-1").rules;
    expect(agent.some((r) => r.from === "192.0.2.0/24")).toBe(false);
  });

  test("three servers: etcd between servers only, the API and WireGuard from everyone", () => {
    const c: FirewallCluster = {
      nodes: [
        node("s1", "203.0.113.10", "server"), node("s2", "198.51.100.20", "server"), node("s3", "192.0.2.30", "server"),
        node("a1", "203.0.113.40"),
      ],
      adminCidrs: [ADMIN],
    };
    const s2 = nodeRuleSet(c, "s2").rules;
    expect(summary(s2.filter((r) => r.purpose === "etcd"))).toEqual([
      "etcd tcp 2379:2380 from 203.0.113.10",
      "etcd tcp 2379:2380 from 192.0.2.30",
    ]);
    expect(sources(s2, "kube-apiserver")).toEqual(["203.0.113.10", "192.0.2.30", "203.0.113.40", ADMIN]);
    expect(sources(s2, "wireguard")).toEqual(["203.0.113.10", "192.0.2.30", "203.0.113.40"]);
    const a1 = nodeRuleSet(c, "a1").rules;
    expect(a1.some((r) => r.purpose === "etcd" || r.purpose === "kube-apiserver")).toBe(false);
    expect(sources(a1, "kubelet")).toEqual(["203.0.113.10", "198.51.100.20", "192.0.2.30"]);
  });

  test("extra rules: single ports, ranges, UDP, listed sources or anywhere", () => {
    const c = article({
      extraRules: [
        { port: 443, description: "ingress" },
        { port: 30000, endPort: 32767, protocol: Protocol.TCP, from: ["192.0.2.0/24", "198.51.100.99"] },
        { port: 3478, protocol: Protocol.UDP, from: ["192.0.2.5"] },
      ],
    });
    const extra = nodeRuleSet(c, "agent-2").rules.filter((r) => r.purpose === "extra");
    expect(summary(extra)).toEqual([
      "extra tcp 443 from any",
      "extra tcp 30000:32767 from 192.0.2.0/24",
      "extra tcp 30000:32767 from 198.51.100.99",
      "extra udp 3478 from 192.0.2.5",
    ]);
    expect(extra[0].description).toBe("ingress");
    expect(ruleWords(extra[1])).toEqual(["allow", "proto", "tcp", "from", "192.0.2.0/24", "to", "any", "port", "30000:32767"]);
  });

  test("a private address is a source only for peers in the same location (its own network)", () => {
    // A 1:1-NAT node (GCP) whose 10.128.0.2 means something only inside GCP.
    const c: FirewallCluster = {
      nodes: [
        node("server", "203.0.113.10", "server", { location: "hetzner" }),
        node("gcp-a", "198.51.100.41", "agent", { privateAddress: "10.128.0.2", location: "gcp" }),
        node("gcp-b", "198.51.100.42", "agent", { privateAddress: "10.128.0.3", location: "gcp" }),
        node("plain", "203.0.113.12", "agent", { privateAddress: "10.0.0.12" }),
      ],
      adminCidrs: [ADMIN],
    };
    const sources = (n: string) => new Set(nodeRuleSet(c, n).rules.filter((r) => r.purpose === "kubelet").map((r) => r.from));
    // Elsewhere the range belongs to someone else: the server allows the GCP nodes' public addresses only.
    expect(sources("server")).toEqual(new Set(["198.51.100.41", "198.51.100.42", "203.0.113.12"]));
    expect(sources("plain")).toEqual(new Set(["203.0.113.10", "198.51.100.41", "198.51.100.42"]));
    // Inside GCP, each allows the other's private address too.
    expect(sources("gcp-a")).toEqual(new Set(["203.0.113.10", "198.51.100.42", "10.128.0.3", "203.0.113.12"]));
    expect(sources("gcp-b")).toContain("10.128.0.2");
    // WireGuard and etcd follow the same rule.
    expect(nodeRuleSet(c, "server").rules.some((r) => r.from === "10.128.0.2")).toBe(false);
  });

  test("custom ports and networks: WireGuard port, pod/service/Kilo ranges, SSH port, private addresses, bastion", () => {
    const c: FirewallCluster = {
      nodes: [
        node("server", "203.0.113.10", "server", { privateAddress: "192.0.2.10", location: "dc1" }),
        node("agent", "203.0.113.11", "agent", { sshPort: 2222, sshFrom: ["203.0.113.10", "192.0.2.10"], location: "dc1" }),
      ],
      adminCidrs: [ADMIN],
      wireguardPort: 51821,
      podCidr: "10.52.0.0/16",
      serviceCidr: "10.53.0.0/16",
      kiloSubnet: "10.14.0.0/16",
    };
    const agent = nodeRuleSet(c, "agent").rules;
    expect(summary(agent.filter((r) => r.purpose === "ssh"))).toEqual([
      `ssh tcp 2222 from ${ADMIN}`,
      "ssh tcp 2222 from 203.0.113.10",
      "ssh tcp 2222 from 192.0.2.10",
    ]);
    expect(summary(agent.filter((r) => r.purpose === "wireguard"))).toEqual([
      "wireguard udp 51821 from 203.0.113.10",
      "wireguard udp 51821 from 192.0.2.10",
    ]);
    expect(agent.filter((r) => r.inInterface).map((r) => r.from)).toEqual([
      "10.52.0.0/16", "10.53.0.0/16", "10.14.0.0/16", "10.52.0.0/16", "10.53.0.0/16",
      "10.52.0.0/16", "10.52.0.0/16", "10.14.0.0/16",
    ]);
  });

  test("a removed peer disappears from every other node; the remaining rules keep their tags", () => {
    const before = clusterRuleSets(article());
    const c = article();
    const after = clusterRuleSets({ ...c, nodes: c.nodes.filter((n) => n.name !== "agent-4") });
    expect(after.map((s) => s.node)).not.toContain("agent-4");
    for (const set of after) {
      expect(set.rules.some((r) => r.from === "203.0.113.14")).toBe(false);
      const old = before.find((s) => s.node === set.node)!;
      const removed = old.rules.filter((r) => !set.rules.some((n) => n.tag === r.tag));
      // Exactly the rules naming the removed node went away.
      expect(removed.length).toBeGreaterThan(0);
      expect(removed.every((r) => r.from === "203.0.113.14")).toBe(true);
      expect(set.rules.every((r) => old.rules.some((o) => o.tag === r.tag))).toBe(true);
    }
  });

  test("tags: our prefix, one per rule, stable, a hash of the ufw words", () => {
    const sets = clusterRuleSets(article());
    for (const set of sets) {
      const tags = set.rules.map((r) => r.tag!);
      expect(new Set(tags).size).toBe(tags.length);
      for (const t of tags) expect(t).toMatch(new RegExp(`^${TAG_PREFIX}[0-9a-f]{16}$`));
    }
    expect(clusterRuleSets(article())).toEqual(sets);
    const { createHash } = require("crypto");
    const r = sets[0].rules[0];
    expect(ruleWords(r).join(" ")).toBe(`allow proto tcp from ${ADMIN} to any port 22`);
    expect(r.tag).toBe(TAG_PREFIX + createHash("sha256").update(ruleWords(r).join(" ")).digest("hex").slice(0, 16));
    const routed = sets[0].rules.find((x) => x.direction === TrafficDirection.ROUTED)!;
    expect(ruleWords(routed)).toEqual(["route", "allow", "in", "on", "kube-bridge", "from", "10.42.0.0/16", "to", "any"]);
  });

  test("a Terraform token as an address: rule kept, tag left to the host, text keeps the marker", () => {
    const token = "${TfToken[TOKEN.42]}";
    const set = nodeRuleSet({ nodes: [node("s", "203.0.113.10", "server"), node("a", token)], adminCidrs: [ADMIN] }, "s");
    const wg = set.rules.filter((r) => r.purpose === "wireguard");
    expect(wg).toHaveLength(1);
    expect(wg[0].from).toBe(token);
    expect(wg[0].tag).toBeUndefined();
    expect(ruleTag(set.rules[0])).toBe(set.rules[0].tag);
    expect(ruleSetText(set)).toContain(`allow proto udp from ${token} to any port 51820`);
  });

  test("the canonical text changes with the peer set and the admin networks, and only with them", () => {
    const text = (c: FirewallCluster, n: string) => ruleSetText(nodeRuleSet(c, n));
    const base = text(article(), "agent-1");
    expect(text(article(), "agent-1")).toBe(base);
    expect(text(article({ adminCidrs: ["192.0.2.0/24"] }), "agent-1")).not.toBe(base);
    const c = article();
    expect(text({ ...c, nodes: [...c.nodes, node("agent-6", "203.0.113.16")] }, "agent-1")).not.toBe(base);
    // API networks only matter on servers.
    expect(text(article({ apiCidrs: ["192.0.2.0/24"] }), "agent-1")).toBe(base);
    expect(text(article({ apiCidrs: ["192.0.2.0/24"] }), "server")).not.toBe(text(article(), "server"));
  });

  test("SSH from admin networks is a plain allow unless asked to rate-limit; SSH from anywhere always is", () => {
    const plain = nodeRuleSet(article(), "agent-1").rules.filter((r) => r.purpose === "ssh");
    expect(summary(plain)).toEqual([`ssh tcp 22 from ${ADMIN}`]);
    const limited = nodeRuleSet(article({ rateLimitSsh: true }), "agent-1").rules.filter((r) => r.purpose === "ssh");
    expect(summary(limited)).toEqual([`ssh limit tcp 22 from ${ADMIN}`]);
    const open = nodeRuleSet(article({ rateLimitSsh: false, adminCidrs: [] }), "agent-1").rules.filter((r) => r.purpose === "ssh");
    expect(summary(open)).toEqual(["ssh limit tcp 22 from any"]);
  });

  test("an unknown node name is an error", () => {
    expect(() => nodeRuleSet(article(), "nope")).toThrow(/no node named "nope"/);
  });
});
