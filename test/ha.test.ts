/**
 * A highly available control plane: servers that join the first one, the registration address,
 * an external datastore, removing servers, and how changes roll over the cluster.
 */
import { createHash } from "crypto";
import { TerraformStack, TerraformVariable } from "cdktf";
import { tmpdir } from "os";
import { join } from "path";
import { K3sAgent, K3sServer, KiloMesh, PeerFirewall } from "../lib";
import { renderInstallScript, RESTART_DECISION_DIGEST } from "../lib/render/install-script";
import { logicalId, newStack, parseRenderedYaml, provisioners, resourceOf, synth, validationErrors } from "./util/synth";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };

interface HaOptions {
  servers?: number;
  agents?: number;
  apiAddress?: string;
  decommission?: number[];
  agentVersion?: string;
  serverVersions?: string[];
  location?: string;
}

function haCluster(o: HaOptions = {}) {
  const { app, stack } = newStack();
  const first = new K3sServer(stack, "server-0", {
    host: { address: "203.0.113.10", ssh }, apiAddress: o.apiAddress, version: o.serverVersions?.[0],
  });
  const servers = [first];
  for (let i = 1; i < (o.servers ?? 3); i++) {
    servers.push(new K3sServer(stack, `server-${i}`, {
      join: first, host: { address: `203.0.113.${10 + i}`, ssh, location: o.location },
      decommission: o.decommission?.includes(i), version: o.serverVersions?.[i],
    }));
  }
  const agents = Array.from({ length: o.agents ?? 3 }, (_, i) =>
    new K3sAgent(stack, `agent-${i}`, { server: servers[i % servers.length], host: { address: `198.51.100.${20 + i}`, ssh }, version: o.agentVersion }));
  return { app, stack, first, servers, agents };
}

const installConfig = (out: any, prefix: string) =>
  parseRenderedYaml(provisioners(resourceOf(out, "terraform_data", `${prefix}_install`)).find((p) => p.type === "file")!.content);
const ref = (out: any, prefix: string) => `terraform_data.${logicalId(out, "terraform_data", prefix)}`;
const warningsOf = (stack: TerraformStack) => stack.node.findAll().flatMap((c) => c.node.metadata)
  .filter((m) => m.type === "@cdktf/warn").map((m) => String(m.data)).join("\n");

describe("HA servers", () => {
  test("the first server starts embedded etcd; the others join it with the CA-pinned server token", () => {
    const { stack } = haCluster();
    expect(validationErrors(stack)).toEqual([]);
    const out = synth(stack);
    const first = installConfig(out, "server-0");
    expect(first["cluster-init"]).toBe(true);
    expect(first.server).toBeUndefined();
    expect(first.token).toMatch(/^\$\{jsonencode\(random_password\.server-0_server-token_\w+\.result\)\}$/);
    for (const i of [1, 2]) {
      const c = installConfig(out, `server-${i}`);
      expect(c["cluster-init"]).toBeUndefined();
      expect(c.server).toBe("https://203.0.113.10:6443");
      // K10<hash of the first server's CA>::server:<secret>: the joiner verifies the cluster first.
      expect(c.token).toMatch(/^\$\{jsonencode\(join\("", \["K10", jsondecode\(data\.local_command\.server-0_credentials_\w+\.stdout\)\.ca_hash, "::server:", random_password\.server-0_server-token_\w+\.result\]\)\)\}$/);
      expect(c["agent-token"]).toBe(first["agent-token"]);
      expect(c["cluster-cidr"]).toBe(first["cluster-cidr"]);
    }
    // One set of tokens and one kubeconfig fetch for the whole cluster.
    expect(Object.keys(out.resource.random_password)).toHaveLength(2);
    expect(Object.keys(out.data!.local_command)).toHaveLength(1);
  });

  test("a single server stays on SQLite (no cluster-init) until a server joins it", () => {
    const { stack } = newStack();
    new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
    expect(installConfig(synth(stack), "server")["cluster-init"]).toBeUndefined();
  });

  test("adding a server to a single-server cluster restarts the first with cluster-init before the new one joins", () => {
    const { stack: a } = newStack();
    new K3sServer(a, "server-0", { host: { address: "203.0.113.10", ssh } });
    const { stack: b } = newStack();
    const first = new K3sServer(b, "server-0", { host: { address: "203.0.113.10", ssh } });
    new K3sServer(b, "server-1", { join: first, host: { address: "203.0.113.11", ssh } });
    const before = synth(a); const after = synth(b);
    expect(resourceOf(after, "terraform_data", "server-0_install").triggers_replace)
      .not.toEqual(resourceOf(before, "terraform_data", "server-0_install").triggers_replace);
    expect(resourceOf(after, "terraform_data", "server-1_install").depends_on).toContain(ref(after, "server-0_install"));
  });

  test("servers join one at a time, in creation order; agents install after the last server, in parallel", () => {
    const { stack } = haCluster({ agents: 4 });
    const out = synth(stack);
    const s = [0, 1, 2].map((i) => ref(out, `server-${i}_install`));
    expect(resourceOf(out, "terraform_data", "server-1_install").depends_on).toContain(s[0]);
    expect(resourceOf(out, "terraform_data", "server-2_install").depends_on).toContain(s[1]);
    expect(resourceOf(out, "terraform_data", "server-2_install").depends_on).not.toContain(s[0]);
    for (let i = 0; i < 4; i++) {
      expect(resourceOf(out, "terraform_data", `agent-${i}_membership`).depends_on).toEqual([s[2]]);
      const text = JSON.stringify(resourceOf(out, "terraform_data", `agent-${i}_install`).depends_on);
      expect(text).not.toMatch(/agent-(?!\d_)/);
      for (let j = 0; j < 4; j++) if (j !== i) expect(text).not.toContain(`agent-${j}_`);
    }
  });

  test("agents created before a server joins still wait for it", () => {
    const { stack } = newStack();
    const first = new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh } });
    new K3sAgent(stack, "agent-0", { server: first, host: { address: "198.51.100.20", ssh } });
    new K3sServer(stack, "server-1", { join: first, host: { address: "203.0.113.11", ssh } });
    const out = synth(stack);
    expect(resourceOf(out, "terraform_data", "agent-0_install").depends_on).toContain(ref(out, "server-1_install"));
  });

  test("the registration address: agents, joining servers and the kubeconfig use it; every certificate covers it", () => {
    const { stack } = haCluster({ apiAddress: "k8s.example.com" });
    const out = synth(stack);
    for (const i of [0, 1, 2]) {
      const c = installConfig(out, `server-${i}`);
      expect(c["tls-san"]).toContain("k8s.example.com");
      expect(c["tls-san"]).toContain(`203.0.113.${10 + i}`);
      if (i > 0) expect(c.server).toBe("https://k8s.example.com:6443");
    }
    for (const i of [0, 1, 2]) expect(installConfig(out, `agent-${i}`).server).toBe("https://k8s.example.com:6443");
    const fetch = Object.values(out.data!.local_command)[0] as any;
    expect(fetch.stdin).toContain("https://k8s.example.com:6443");
  });

  test("agents never get the server token or admin credentials, whichever server they join", () => {
    const { stack } = haCluster();
    const out = synth(stack);
    for (const i of [0, 1, 2]) {
      const everything = JSON.stringify(Object.entries(out.resource.terraform_data).filter(([k]) => k.startsWith(`agent-${i}_`)));
      expect(everything).toContain("::node:");
      expect(everything).not.toMatch(/server-token/);
      expect(everything).not.toMatch(/stdout\)\.kubeconfig|client_key|client_certificate/);
    }
  });

  test("one cluster: clusterNodes, PeerFirewall and KiloMesh cover every server and agent", () => {
    const { app, stack, first, servers, agents } = haCluster();
    expect(servers[2].clusterNodes).toEqual([...servers, ...agents.filter((_, i) => i % 3 === 0), ...agents.filter((_, i) => i % 3 === 1), ...agents.filter((_, i) => i % 3 === 2)]);
    const fw = new PeerFirewall(stack, "firewall", { server: first, adminCidrs: ["192.0.2.0/28"] });
    const mesh = new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server: servers[1] });
    expect(validationErrors(stack)).toEqual([]);
    expect(mesh.node.validate()).toEqual([]);
    expect(new Set(fw.nodes)).toEqual(new Set([...servers, ...agents]));
    expect(new Set(mesh.nodes)).toEqual(new Set([...servers, ...agents]));
    // etcd only between servers; the API from every node to every server.
    const etcdFrom = (n: K3sServer | K3sAgent) => fw.rulesFor(n).filter((r) => r.purpose === "etcd").map((r) => r.from).sort();
    expect(etcdFrom(servers[0])).toEqual(["203.0.113.11", "203.0.113.12"]);
    expect(etcdFrom(servers[1])).toEqual(["203.0.113.10", "203.0.113.12"]);
    expect(etcdFrom(agents[0])).toEqual([]);
    for (const sv of servers) {
      const api = fw.rulesFor(sv).filter((r) => r.purpose === "kube-apiserver").map((r) => r.from);
      for (const a of agents) expect(api).toContain(a.host.address);
    }
    for (const a of agents) expect(fw.rulesFor(a).filter((r) => r.purpose === "kube-apiserver")).toEqual([]);
    // The mesh stack talks to the registration address with the first server's credentials.
    const meshOut = JSON.parse(require("cdktf").Testing.synth(TerraformStack.of(mesh)));
    expect(JSON.stringify(meshOut.provider.kubernetes)).toContain("https://203.0.113.10:6443");
  });

  test("an external datastore: config.yaml only, from a sensitive variable; no cluster-init, no join URL", () => {
    const { stack } = newStack();
    const dsn = new TerraformVariable(stack, "datastore", { type: "string", sensitive: true });
    const first = new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh }, datastoreEndpoint: dsn.stringValue });
    new K3sServer(stack, "server-1", { join: first, host: { address: "203.0.113.11", ssh } });
    expect(validationErrors(stack)).toEqual([]);
    const out = synth(stack);
    for (const i of [0, 1]) {
      const c = installConfig(out, `server-${i}`);
      expect(c["datastore-endpoint"]).toBe("${jsonencode(sensitive(var.datastore))}");
      expect(c["cluster-init"]).toBeUndefined();
      expect(c.server).toBeUndefined();
      // Never in a script (command lines) nor in a trigger.
      const install = resourceOf(out, "terraform_data", `server-${i}_install`);
      for (const p of provisioners(install).filter((x) => x.type === "remote-exec")) expect(JSON.stringify(p)).not.toContain("var.datastore");
      // In the trigger only inside a digest.
      expect(install.triggers_replace.values).toMatch(/^\$\{sha256\(join\("\\n", \[.*sensitive\(var\.datastore\)\]\)\)\}$/);
    }
    expect(warningsOf(stack)).not.toMatch(/even number/);
  });

  test("servers roll one at a time: a version bump changes every server's trigger, each waits for the one before", () => {
    const base = synth(haCluster().stack);
    const bumped = synth(haCluster({ serverVersions: ["v1.34.1+k3s1", "v1.34.1+k3s1", "v1.34.1+k3s1"], agentVersion: "v1.34.1+k3s1" }).stack);
    for (const i of [0, 1, 2]) {
      expect(resourceOf(bumped, "terraform_data", `server-${i}_install`).triggers_replace)
        .not.toEqual(resourceOf(base, "terraform_data", `server-${i}_install`).triggers_replace);
    }
    const script = provisioners(resourceOf(bumped, "terraform_data", "server-1_install")).slice(-1)[0].inline[0];
    expect(script).toContain("node $NODE_NAME to be Ready again");
  });
});

describe("HA validation (bad input)", () => {
  const cases: Array<[string, () => TerraformStack, RegExp]> = [
    ["mixing embedded etcd and an external datastore", () => {
      const { stack } = newStack();
      const first = new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh } });
      new K3sServer(stack, "server-1", { join: first, host: { address: "203.0.113.11", ssh }, datastoreEndpoint: "postgres://db.example.com:5432/k3s" });
      return stack;
    }, /K3sServer "cluster\/server-1": datastoreEndpoint: the first server cluster\/server-0 uses embedded etcd; a cluster has one datastore/],
    ["a datastore password in plain text", () => {
      const { stack } = newStack();
      new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh }, datastoreEndpoint: "postgres://k3s:hunter2@db.example.com:5432/k3s" });
      return stack;
    }, /K3sServer "cluster\/server-0": datastoreEndpoint: this endpoint carries a password as plain text.*sensitive TerraformVariable/],
    ["joining a server in another stack", () => {
      const { app, stack } = newStack();
      const other = new TerraformStack(app, "other");
      const first = new K3sServer(other, "server-0", { host: { address: "203.0.113.10", ssh } });
      new K3sServer(stack, "server-1", { join: first, host: { address: "203.0.113.11", ssh } });
      return stack;
    }, /K3sServer "cluster\/server-1": join: other\/server-0 is in stack "other" but this server is in "cluster".*create every server of a cluster in one stack/],
    ["a joining server with its own CIDR", () => {
      const { stack } = newStack();
      const first = new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh } });
      new K3sServer(stack, "server-1", { join: first, host: { address: "203.0.113.11", ssh }, clusterCidr: "10.50.0.0/16" });
      return stack;
    }, /K3sServer "cluster\/server-1": clusterCidr: set it on the cluster's first server cluster\/server-0 only/],
    ["decommissioning the first server while others join through it", () => {
      const { stack } = newStack();
      const first = new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh }, decommission: true });
      new K3sServer(stack, "server-1", { join: first, host: { address: "203.0.113.11", ssh } });
      return stack;
    }, /K3sServer "cluster\/server-0": decommission: this is the first server, which cluster\/server-1 joined through/],
    ["leaving fewer than a quorum", () => haCluster({ decommission: [1, 2] }).stack,
      /K3sServer "cluster\/server-0": cluster: decommissioning 2 of 3 etcd servers at once leaves 1, fewer than a quorum \(2\).*one server per deploy/],
    ["an agent newer than another server of its cluster", () => haCluster({ serverVersions: ["v1.34.1+k3s1", "v1.33.5+k3s1", "v1.34.1+k3s1"], agentVersion: "v1.34.1+k3s1" }).stack,
      /K3sAgent "cluster\/agent-0": version: v1\.34\.1\+k3s1 is newer than its server cluster\/server-1's v1\.33\.5\+k3s1/],
    ["servers more than one minor release apart", () => haCluster({ serverVersions: ["v1.34.1+k3s1", "v1.32.8+k3s1", "v1.33.4+k3s1"], agentVersion: "v1.32.8+k3s1" }).stack,
      /K3sServer "cluster\/server-0": version: cluster\/server-0 runs v1\.34\.1\+k3s1 and cluster\/server-1 v1\.32\.8\+k3s1: servers of one cluster may be at most one minor release apart/],
    ["maxUnavailable below 1", () => {
      const { stack } = newStack();
      new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh }, rollout: { maxUnavailable: 0 } });
      return stack;
    }, /K3sServer "cluster\/server-0": rollout\.maxUnavailable: 0 must be a whole number of agents, at least 1/],
    ["maxUnavailablePercent above 100", () => {
      const { stack } = newStack();
      new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh }, rollout: { maxUnavailablePercent: 150 } });
      return stack;
    }, /rollout\.maxUnavailablePercent: 150 must be a percentage above 0 and at most 100/],
    ["slotTimeoutSeconds below a minute", () => {
      const { stack } = newStack();
      new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh }, rollout: { slotTimeoutSeconds: 5 } });
      return stack;
    }, /K3sServer "cluster\/server-0": rollout\.slotTimeoutSeconds: 5 must be a whole number of seconds between 60 and 604800/],
    ["join given something that is not a K3sServer", () => {
      const { stack } = newStack();
      new K3sServer(stack, "server-1", { join: {} as any, host: { address: "203.0.113.11", ssh } });
      return stack;
    }, /K3sServer "cluster\/server-1": join: pass the K3sServer construct of the cluster to join/],
  ];
  test.each(cases)("%s", (_name, build, message) => {
    expect(validationErrors(build()).join("\n")).toMatch(message);
  });

  test("an even number of etcd servers is a warning (added at synth), not an error", () => {
    const { stack } = haCluster({ servers: 2 });
    expect(validationErrors(stack)).toEqual([]);
    synth(stack);
    expect(warningsOf(stack)).toMatch(/K3sServer "cluster\/server-0": cluster: 2 servers with embedded etcd: etcd needs a majority \(2 of 2\).*Use 1 or 3/);
    const three = haCluster({ servers: 3 }).stack;
    synth(three);
    expect(warningsOf(three)).not.toMatch(/etcd needs a majority/);
  });
});

describe("embedded etcd and locations (K3s supports embedded etcd within one location only)", () => {
  /** Three servers at the given locations (undefined: none), embedded etcd unless `datastore`. */
  function servers(locations: Array<string | undefined>, datastore = false) {
    const { stack } = newStack();
    const first = new K3sServer(stack, "server-0", {
      host: { address: "203.0.113.10", ssh, location: locations[0] },
      datastoreEndpoint: datastore ? new TerraformVariable(stack, "datastore", { sensitive: true }).stringValue : undefined,
    });
    locations.slice(1).forEach((location, i) =>
      new K3sServer(stack, `server-${i + 1}`, { join: first, host: { address: `203.0.113.${11 + i}`, ssh, location } }));
    expect(validationErrors(stack)).toEqual([]); // a warning, never an error
    synth(stack);
    return warningsOf(stack);
  }
  const acrossLocations = /K3s does not support embedded etcd across locations/;

  test("servers in different locations: a warning naming them, pointing to one location or an external datastore", () => {
    const w = servers(["hetzner-fsn1", "do-fra1", "hetzner-fsn1"]);
    expect(w).toMatch(/K3sServer "cluster\/server-0": cluster: its 3 embedded etcd servers are in 2 locations \("hetzner-fsn1", "do-fra1"\)\. K3s does not support embedded etcd across locations/);
    expect(w).toMatch(/docs\.k3s\.io, "Distributed hybrid or multicloud cluster"/);
    expect(w).toMatch(/Put every server in one location .* or use an external datastore \(datastoreEndpoint on the first server\)/);
  });

  test("servers without a location: a warning naming them (nothing says they share a network)", () => {
    expect(servers([undefined, undefined, undefined])).toMatch(
      /cluster\/server-0, cluster\/server-1, cluster\/server-2 give no host\.location, so nothing says its 3 embedded etcd servers share a network\. K3s does not support/);
    expect(servers(["fsn1", "fsn1", undefined])).toMatch(/cluster\/server-2 gives no host\.location/);
    expect(servers(["fsn1", "fra1", undefined])).toMatch(/in 2 locations \("fsn1", "fra1"\) and cluster\/server-2 give none/);
  });

  test("no warning: every server in one location, an external datastore, or a single server", () => {
    expect(servers(["fsn1", "fsn1", "fsn1"])).not.toMatch(acrossLocations);
    expect(servers(["fsn1", "fra1", "nbg1"], true)).not.toMatch(acrossLocations);
    expect(servers([undefined])).not.toMatch(acrossLocations);
  });

  test("the warning is printed once when the app synthesizes", () => {
    const { app, stack } = newStack();
    const first = new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh, location: "a" } });
    new K3sServer(stack, "server-1", { join: first, host: { address: "203.0.113.11", ssh, location: "b" } });
    new K3sServer(stack, "server-2", { join: first, host: { address: "203.0.113.12", ssh, location: "b" } });
    const err: string[] = [];
    const write = jest.spyOn(process.stderr, "write").mockImplementation((chunk: any) => { err.push(String(chunk)); return true; });
    try {
      app.synth();
    } finally {
      write.mockRestore();
    }
    expect(err.join("").match(/K3s does not support embedded etcd across locations/g)).toHaveLength(1);
  });
});

describe("removing a server", () => {
  test("decommission drains and deletes its Node on the first server, then uninstalls; firewalls and the mesh drop it", () => {
    const { app, stack, first, servers } = haCluster({ decommission: [2], location: "dc-2" });
    const fw = new PeerFirewall(stack, "firewall", { server: first, adminCidrs: ["192.0.2.0/28"] });
    const mesh = new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server: first });
    expect(validationErrors(stack)).toEqual([]);
    const out = synth(stack);
    const membership = resourceOf(out, "terraform_data", "server-2_membership");
    expect(membership.count).toBe(0);
    expect(resourceOf(out, "terraform_data", "server-2_install").count).toBe(0);
    const [drain, uninstall] = provisioners(membership);
    expect(drain.when).toBe("destroy");
    expect(drain.inline[0]).toContain("NODE='server-2'");
    expect(drain.inline[0]).toContain("kubectl delete node");
    expect(drain.connection.host).toBe("${self.input.server_host}");
    expect(membership.input.server_host).toBe("203.0.113.10");
    expect(uninstall.inline[0]).toContain("k3s-uninstall.sh");
    expect(uninstall.connection.host).toBe("${self.input.host}");
    expect(fw.nodes).not.toContain(servers[2]);
    for (const n of fw.nodes) expect(fw.rulesFor(n).map((r) => r.from)).not.toContain("203.0.113.12");
    // The mesh annotates no node for it.
    const meshOut = JSON.parse(require("cdktf").Testing.synth(TerraformStack.of(mesh)));
    const annotated = JSON.stringify(meshOut.resource.kubernetes_annotations ?? {});
    expect(annotated).toContain("server-1");
    expect(annotated).not.toContain("server-2");
  });
});

describe("rolling agents", () => {
  test("each agent's install starts with a drain step and ends with an uncordon step on the first server, in one resource", () => {
    const { stack } = haCluster();
    const out = synth(stack);
    for (const i of [0, 1, 2]) {
      const ps = provisioners(resourceOf(out, "terraform_data", `agent-${i}_install`));
      const [drain, uncordon] = [ps[0], ps[ps.length - 1]];
      expect(drain.connection.host).toBe("203.0.113.10");
      expect(uncordon.connection.host).toBe("203.0.113.10");
      expect(drain.inline[0]).toContain("wait for a rollout slot, cordon and drain it");
      expect(drain.inline[0]).toContain(`NODE='agent-${i}'`);
      expect(drain.inline[0]).toContain("MAX_UNAVAILABLE=1");
      expect(uncordon.inline[0]).toContain("uncordon");
      // The steps in between run on the agent itself (the resource's connection).
      expect(ps.slice(1, -1).every((p) => p.connection === undefined)).toBe(true);
      expect(resourceOf(out, "terraform_data", `agent-${i}_install`).connection.host).toBe(`198.51.100.${20 + i}`);
    }
    // Servers' installs have no such steps: they go one at a time through their join chain.
    expect(provisioners(resourceOf(out, "terraform_data", "server-1_install")).every((p) => p.connection === undefined)).toBe(true);
  });

  /** A numeric parameter of agent-0's drain step, in a cluster of `agents` with these rollout options. */
  const drainParameter = (name: string, rollout: any, agents: number): number => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh }, rollout });
    for (let i = 0; i < agents; i++) new K3sAgent(stack, `agent-${i}`, { server, host: { address: `198.51.100.${20 + i}`, ssh } });
    const install = resourceOf(synth(stack), "terraform_data", "agent-0_install");
    return Number(new RegExp(`^${name}=(\\d+)$`, "m").exec(provisioners(install)[0].inline[0])![1]);
  };

  test("maxUnavailable and maxUnavailablePercent set the slots", () => {
    expect(drainParameter("MAX_UNAVAILABLE", { maxUnavailable: 3 }, 6)).toBe(3);
    expect(drainParameter("MAX_UNAVAILABLE", { maxUnavailablePercent: 25 }, 10)).toBe(2);
    expect(drainParameter("MAX_UNAVAILABLE", { maxUnavailablePercent: 5 }, 10)).toBe(1);
  });

  test("the drain is keyed to what restarts K3s: a script-only change keeps the rollout inputs, a version or config change does not", () => {
    const agentStep = (agentProps: any) => {
      const { stack } = newStack();
      const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
      new K3sAgent(stack, "agent-0", { server, host: { address: "198.51.100.20", ssh }, ...agentProps });
      const install = resourceOf(synth(stack), "terraform_data", "agent-0_install");
      const inputs = /INPUTS=('[^\n]*')/.exec(provisioners(install)[0].inline[0])![1];
      expect(/INPUTS=('[^\n]*')/.exec(provisioners(install).slice(-1)[0].inline[0])![1]).toBe(inputs);
      return { inputs, trigger: JSON.stringify(install.triggers_replace) };
    };
    const base = agentStep({});
    // The install script's text changes (another program), what K3s runs does not.
    const scriptOnly = agentStep({ install: { installWireguardTools: false } });
    expect(scriptOnly.trigger).not.toBe(base.trigger);
    expect(scriptOnly.inputs).toBe(base.inputs);
    expect(agentStep({ version: "v1.33.1+k3s1" }).inputs).not.toBe(base.inputs);
    expect(agentStep({ labels: { tier: "x" } }).inputs).not.toBe(base.inputs);
    // A digest; the token (CA hash from the fetch, and the secret) only through Terraform's sha256.
    expect(base.inputs).toMatch(/[0-9a-f]{64}-\$\{nonsensitive\(sha256\(join\("\\n", \[sensitive\(join\(""/);
    expect(base.inputs).toMatch(/data\.local_command\.server_credentials_[A-Z0-9]+\.stdout/);
    expect(base.inputs.match(/random_password/g)).toHaveLength(1);
    // A file:// installer is read on the host every time: no inputs, so the drain is never skipped.
    expect(agentStep({ install: { scriptUrl: "file:///opt/k3s/install.sh" } }).inputs).toBe("''");
  });

  test("the rollout inputs cover the install script's restart decision as rendered", () => {
    const script = renderInstallScript({ role: "agent", nodeName: "n", version: "v1.33.4+k3s1", installScriptUrl: "https://x", skipDownload: false, installWireguardTools: true, readyTimeoutSeconds: 60 }, LATE).split("\n");
    const first = script.findIndex((l) => l.startsWith("installer_sha256="));
    const lines = script.slice(first, first + 3);
    expect(lines[1]).toMatch(/^fingerprint=/);
    expect(createHash("sha256").update(lines.join("\n")).digest("hex").slice(0, 16)).toBe(RESTART_DECISION_DIGEST);
  });

  test("the slot wait is bounded by every agent's turn, or by rollout.slotTimeoutSeconds", () => {
    const slotTimeout = (rollout: any, agents: number) => drainParameter("SLOT_TIMEOUT", rollout, agents);
    // Default: 10 agents one at a time, each within drain 120 + ready 300 + 120 s.
    expect(slotTimeout({}, 10)).toBe(10 * 540);
    expect(slotTimeout({ maxUnavailable: 5 }, 10)).toBe(2 * 540);
    expect(slotTimeout({ slotTimeoutSeconds: 900 }, 10)).toBe(900);
  });

  test("a change to one agent replaces only that agent's install", () => {
    const a = synth(haCluster().stack);
    const { stack } = newStack();
    const first = new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh } });
    const s1 = new K3sServer(stack, "server-1", { join: first, host: { address: "203.0.113.11", ssh } });
    const s2 = new K3sServer(stack, "server-2", { join: first, host: { address: "203.0.113.12", ssh } });
    const servers = [first, s1, s2];
    for (let i = 0; i < 3; i++) {
      new K3sAgent(stack, `agent-${i}`, { server: servers[i], host: { address: `198.51.100.${20 + i}`, ssh }, labels: i === 1 ? { tier: "x" } : undefined });
    }
    const b = synth(stack);
    const changed = Object.keys(b.resource.terraform_data).filter((k) =>
      JSON.stringify(b.resource.terraform_data[k].triggers_replace) !== JSON.stringify(a.resource.terraform_data[k]?.triggers_replace));
    expect(changed.map((k) => k.replace(/_[0-9A-F]+$/i, "")).sort()).toEqual(["agent-1_install"]);
  });
});

describe("one mesh for an HA cluster", () => {
  test("KiloMesh accepts agents of any server of the cluster and refuses another cluster's", () => {
    const { app, servers, agents } = haCluster();
    const ok = new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server: servers[0], nodes: [...servers, ...agents] });
    expect(ok.node.validate()).toEqual([]);
    const { stack: other } = newStack("other");
    const stranger = new K3sServer(other, "lonely", { host: { address: "203.0.113.99", ssh } });
    const strangerAgent = new K3sAgent(other, "lonely-agent", { server: stranger, host: { address: "203.0.113.98", ssh } });
    const bad = new KiloMesh(new TerraformStack(app, "mesh-2"), "kilo", { server: servers[1], nodes: [...servers, ...agents, strangerAgent] });
    expect(bad.node.validate().join("\n")).toMatch(/other\/lonely-agent joins other\/lonely, not this mesh's server cluster\/server-1/);
  });
});

describe("the report knows the control plane", () => {
  test("three servers, etcd only between them, the API from every agent to every server", () => {
    const { collectReportData } = require("../lib/constructs/cluster-report");
    const { firewallMatrix } = require("../lib/render/cluster-report");
    const { app, stack, first } = haCluster();
    new PeerFirewall(stack, "firewall", { server: first, adminCidrs: ["192.0.2.0/28"] });
    new KiloMesh(new TerraformStack(app, "mesh"), "kilo", { server: first });
    const data = collectReportData(app);
    expect(data.nodes.filter((n: any) => n.role === "server").map((n: any) => n.name)).toEqual(["server-0", "server-1", "server-2"]);
    const m = firewallMatrix(data);
    const etcd = m.filter((e: any) => e.purpose === "etcd").map((e: any) => `${e.from}>${e.to}`).sort();
    expect(etcd).toEqual(["server-0>server-1", "server-0>server-2", "server-1>server-0", "server-1>server-2", "server-2>server-0", "server-2>server-1"]);
    for (const s of ["server-0", "server-1", "server-2"]) {
      for (const a of ["agent-0", "agent-1", "agent-2"]) {
        expect(m.some((e: any) => e.purpose === "kube-apiserver" && e.from === a && e.to === s)).toBe(true);
      }
    }
  });
});

describe("the HA example", () => {
  test("synthesizes without errors: three servers joined to the first, one firewall and one mesh over eight nodes", () => {
    const { App } = require("cdktf");
    const { buildHaArticleCluster } = require("../examples/article-cluster/ha");
    const { mkdtempSync, rmSync } = require("fs");
    const outdir = mkdtempSync(join(tmpdir(), "ha-example-"));
    try {
      const app = new App({ outdir });
      const { cluster, mesh, servers } = buildHaArticleCluster(app);
      expect(validationErrors(cluster)).toEqual([]);
      expect(validationErrors(mesh)).toEqual([]);
      app.synth();
      expect(servers[0].clusterNodes).toHaveLength(8);
      // Its servers share one location: embedded etcd as K3s supports it, no warning.
      expect(warningsOf(cluster)).not.toMatch(/K3s does not support embedded etcd across locations/);
      const out = synth(cluster);
      expect(installConfig(out, "server-b").server).toBe("https://k8s.example.com:6443");
      expect(provisioners(resourceOf(out, "terraform_data", "agent-1_install"))[0].inline[0]).toContain("MAX_UNAVAILABLE=2");
    } finally { rmSync(outdir, { recursive: true, force: true }); }
  });
});
