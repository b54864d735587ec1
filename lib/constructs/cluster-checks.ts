/**
 * Checks that look at the cluster as a whole rather than at one construct's props: the node
 * list each PeerFirewall and KiloMesh covers, settings that must agree between them, duplicate
 * addresses, version skew. Each returns messages in the bad-input style (construct, field, fix).
 */
import { DefaultTokenResolver, StringConcat, TerraformOutput, TerraformStack, Tokenization } from "cdktf";
import { IConstruct } from "constructs";
import * as v from "./validate";
import { K3sNode, NodeRole } from "./k3s-node";

/**
 * What these checks read of a K3sServer. Declared here rather than imported so the checks sit
 * below every construct that uses them (K3sServer among them) and nothing imports in a circle.
 */
export interface ClusterServer extends K3sNode {
  readonly clusterRoot: ClusterServer;
  readonly clusterServers: ClusterServer[];
  readonly clusterNodes: K3sNode[];
  readonly joins?: ClusterServer;
  readonly datastoreEndpoint?: string;
  readonly clusterCidr: string;
  readonly serviceCidr: string;
}

/** A K3sServer: the only kind of node whose role is server. */
export function isServer(n: unknown): n is ClusterServer {
  return n instanceof K3sNode && n.role === NodeRole.SERVER;
}

/**
 * The clusters `nodes` touch, each as its first server: the servers among them and the servers
 * their agents join, mapped to their cluster's first server (an HA cluster is one cluster).
 */
export function serversOf(nodes: K3sNode[]): ClusterServer[] {
  const servers = new Set<ClusterServer>();
  for (const n of nodes) {
    if (isServer(n)) servers.add(n.clusterRoot);
    const joins = (n as { server?: unknown }).server;
    if (isServer(joins)) servers.add(joins.clusterRoot);
  }
  return [...servers];
}

/**
 * Members of the clusters of `servers` that `covered` leaves out. A node left out of a firewall
 * gets none and its peers drop its traffic; left out of the mesh, it loses its Kilo annotations.
 */
export function missingMembers(where: string, servers: ClusterServer[], covered: K3sNode[], defaulted: boolean, construct: string): string[] {
  const have = new Set(covered);
  const errors: string[] = [];
  for (const server of servers) {
    for (const n of server.clusterNodes) {
      if (n.decommissioned || have.has(n)) continue;
      errors.push(defaulted
        ? `${where}: nodes: ${n.node.path} joined ${server.node.path} after this ${construct} was created, so it is not covered; create the ${construct} after every K3sAgent of the cluster`
        : `${where}: nodes: ${n.node.path} (${isServer(n) ? (n === server ? "the server" : `a server of ${server.node.path}'s cluster`) : `joins ${((n as { server?: K3sNode }).server ?? server).node.path}`}) is missing; leave nodes out to cover the whole cluster, or add it`);
    }
  }
  return errors;
}

/** Two nodes of one cluster at the same address: the same machine twice, or a copy-paste slip. */
export function duplicateAddresses(server: ClusterServer): string[] {
  const where = `K3sServer "${server.node.path}"`;
  const seen = new Map<string, K3sNode>();
  const errors: string[] = [];
  for (const n of server.clusterNodes) {
    const a = n.host?.address;
    if (a === undefined || v.isToken(a) || n.decommissioned) continue;
    const first = seen.get(a);
    if (!first) { seen.set(a, n); continue; }
    const target = (x: K3sNode) => `${x.host.ssh?.host ?? x.host.address}:${x.host.ssh?.port ?? 22}`;
    if (target(first) === target(n)) {
      errors.push(`${where}: cluster: ${first.node.path} and ${n.node.path} both have host.address "${a}" and the same SSH target; each node needs a machine of its own`);
    } else if (!(first.host.behindNat && n.host.behindNat)) {
      errors.push(`${where}: cluster: ${first.node.path} and ${n.node.path} both have host.address "${a}"; peers and Kilo tell nodes apart by address. ` +
        "Only nodes behind one NAT may share it: set behindNat: true on both");
    }
  }
  return errors;
}

/** Quorum of an etcd cluster of n voting members. */
export function quorum(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * Warnings about a cluster's control plane, for its first server (attached at synth by an aspect,
 * once the cluster is complete; validations stay free of side effects):
 * - an even number of embedded etcd servers;
 * - embedded etcd servers in different locations, or without one: K3s does not support embedded
 *   etcd in a "distributed hybrid or multicloud cluster" (docs.k3s.io, networking/distributed-multicloud:
 *   "all server nodes must be reachable to each other via their private IPs … all servers should be
 *   in the same location"); etcd peers at the nodes' private addresses (k3s-io/k3s#2345, #2965,
 *   #5908), and its heartbeats want a LAN's latency.
 */
export function haWarnings(root: ClusterServer): string[] {
  const where = `K3sServer "${root.node.path}"`;
  const live = root.clusterServers.filter((sv) => !sv.decommissioned);
  if (root.datastoreEndpoint !== undefined || live.length < 2) return [];
  const warnings: string[] = [];
  if (live.length % 2 === 0) {
    warnings.push(`${where}: cluster: ${live.length} servers with embedded etcd: etcd needs a majority (${quorum(live.length)} of ${live.length}), so an even number tolerates no more failures than one server fewer. Use ${live.length - 1} or ${live.length + 1}`);
  }
  const locations = live.map((sv) => sv.host?.location);
  if (!locations.some((l) => l !== undefined && v.isToken(l))) {
    const missing = live.filter((sv) => sv.host?.location === undefined || sv.host.location === "");
    const distinct = [...new Set(locations.filter((l): l is string => l !== undefined && l !== ""))];
    if (missing.length > 0 || distinct.length > 1) {
      const what = distinct.length > 1
        ? `its ${live.length} embedded etcd servers are in ${distinct.length} locations (${distinct.map((l) => `"${l}"`).join(", ")})${missing.length ? ` and ${missing.map((sv) => sv.node.path).join(", ")} give none` : ""}`
        : `${missing.map((sv) => sv.node.path).join(", ")} give${missing.length === 1 ? "s" : ""} no host.location, so nothing says its ${live.length} embedded etcd servers share a network`;
      warnings.push(`${where}: cluster: ${what}. K3s does not support embedded etcd across locations ` +
        "(docs.k3s.io, \"Distributed hybrid or multicloud cluster\": all servers should be in the same location, reaching each other at their private addresses; agents may be anywhere). " +
        "Put every server in one location (one provider's region, on a private network they share: give each its privateAddress) with the same host.location, " +
        "or use an external datastore (datastoreEndpoint on the first server) to spread servers over locations");
    }
  }
  return warnings;
}

/**
 * The checks of an HA control plane, for one server: what it joins, how many servers the cluster
 * keeps, datastore and decommissioning.
 */
export function haErrors(server: ClusterServer, props: { join?: unknown; datastoreEndpoint?: string; apiAddress?: string; clusterCidr?: string; serviceCidr?: string; clusterName?: string; secretsEncryption?: boolean; rollout?: { maxUnavailable?: number; maxUnavailablePercent?: number; slotTimeoutSeconds?: number }; drainTimeoutSeconds?: number }): string[] {
  const where = `K3sServer "${server.node.path}"`;
  const errors: string[] = [];
  const err = (field: string, msg: string) => errors.push(`${where}: ${field}: ${msg}`);
  const root = server.clusterRoot;
  if (props.join !== undefined && !isServer(props.join)) {
    err("join", "pass the K3sServer construct of the cluster to join");
    return errors;
  }
  if (server.joins) {
    if (server.joins.stack !== server.stack) {
      err("join", `${server.joins.node.path} is in stack "${server.joins.stack.node.id}" but this server is in "${server.stack.node.id}": ` +
        "a joining server needs the cluster's CA hash, server token and a server to run its destroy-time steps on, all from the same stack's state; create every server of a cluster in one stack");
    }
    for (const [field, given] of [["apiAddress", props.apiAddress], ["clusterCidr", props.clusterCidr], ["serviceCidr", props.serviceCidr], ["clusterName", props.clusterName], ["secretsEncryption", props.secretsEncryption], ["rollout", props.rollout]] as const) {
      if (given !== undefined) err(field, `set it on the cluster's first server ${root.node.path} only: every server of a cluster shares it`);
    }
    if (props.datastoreEndpoint !== undefined && root.datastoreEndpoint === undefined) {
      err("datastoreEndpoint", `the first server ${root.node.path} uses embedded etcd; a cluster has one datastore: set datastoreEndpoint on the first server (every server then uses it) or on none`);
    } else if (props.datastoreEndpoint !== undefined) {
      err("datastoreEndpoint", `set it on the first server ${root.node.path} only; joining servers use the same datastore`);
    }
  }
  if (props.datastoreEndpoint !== undefined) {
    // Literal parts too: a password joined to a token (template string, Fn.join) still lands in cdk.tf.json.
    const bad = v.checkDatastoreEndpoint(props.datastoreEndpoint);
    if (bad) err("datastoreEndpoint", bad);
  }
  if (server === root) {
    const o = props.rollout ?? {};
    // A number token is a huge negative double at synth: say what it is rather than print it.
    const late = (field: string, value: number | undefined, what: string, example: string) => {
      if (!v.isNumberToken(value)) return false;
      err(field, v.synthTimeNumber(what, example));
      return true;
    };
    const muLate = late("rollout.maxUnavailable", o.maxUnavailable, "how many agents restart at once", "2");
    const mpLate = late("rollout.maxUnavailablePercent", o.maxUnavailablePercent, "how many agents restart at once", "25");
    const stLate = late("rollout.slotTimeoutSeconds", o.slotTimeoutSeconds, "how long an agent waits for a rollout slot", "3600");
    if (!muLate && o.maxUnavailable !== undefined && (!Number.isInteger(o.maxUnavailable) || o.maxUnavailable < 1)) err("rollout.maxUnavailable", `${o.maxUnavailable} must be a whole number of agents, at least 1`);
    if (!mpLate && o.maxUnavailablePercent !== undefined && (!Number.isFinite(o.maxUnavailablePercent) || o.maxUnavailablePercent <= 0 || o.maxUnavailablePercent > 100)) err("rollout.maxUnavailablePercent", `${o.maxUnavailablePercent} must be a percentage above 0 and at most 100`);
    if (!stLate && o.slotTimeoutSeconds !== undefined && (!Number.isInteger(o.slotTimeoutSeconds) || o.slotTimeoutSeconds < 60 || o.slotTimeoutSeconds > 7 * 86400)) {
      err("rollout.slotTimeoutSeconds", `${o.slotTimeoutSeconds} must be a whole number of seconds between 60 and 604800 (7 days)`);
    }
    if (o.maxUnavailable !== undefined && o.maxUnavailablePercent !== undefined) err("rollout", "give maxUnavailable or maxUnavailablePercent, not both");
    const servers = server.clusterServers;
    const live = servers.filter((sv) => !sv.decommissioned);
    const removed = servers.length - live.length;
    const embedded = root.datastoreEndpoint === undefined;
    // Servers of one cluster may differ by one minor release (the middle of a rolling upgrade), not more.
    const minors = live.map((sv) => ({ sv, m: v.isToken(sv.version) ? undefined : /^v(\d+)\.(\d+)\./.exec(sv.version) }))
      .filter((x) => x.m).map((x) => ({ sv: x.sv, minor: Number(x.m![1]) * 1000 + Number(x.m![2]) }));
    if (minors.length > 1) {
      const lo = minors.reduce((a, b) => (b.minor < a.minor ? b : a));
      const hi = minors.reduce((a, b) => (b.minor > a.minor ? b : a));
      if (hi.minor - lo.minor > 1) {
        err("version", `${hi.sv.node.path} runs ${hi.sv.version} and ${lo.sv.node.path} ${lo.sv.version}: servers of one cluster may be at most one minor release apart. Upgrade one minor release at a time, every server together`);
      }
    }
    if (server.decommissioned) {
      const dependents = server.clusterNodes.filter((n) => n !== server && !n.decommissioned);
      if (dependents.length) {
        err("decommission", `this is the first server, which ${dependents.map((n) => n.node.path).join(", ")} joined through and whose state holds the cluster's tokens and kubeconfig; ` +
          "decommission the other servers and agents first (or rebuild the cluster around another first server)");
      }
    } else if (embedded && removed > 0 && live.length < quorum(servers.length)) {
      err("cluster", `decommissioning ${removed} of ${servers.length} etcd servers at once leaves ${live.length}, fewer than a quorum (${quorum(servers.length)}); etcd would stop. Decommission one server per deploy`);
    }
  }
  const dt = props.drainTimeoutSeconds;
  if (v.isNumberToken(dt)) err("drainTimeoutSeconds", v.synthTimeNumber("how long the drain waits", "120"));
  else if (dt !== undefined && (!Number.isInteger(dt) || dt < 0 || dt > 3600)) err("drainTimeoutSeconds", `${dt} must be a whole number of seconds between 0 and 3600`);
  return errors;
}

function k3sVersion(version: string): number[] | undefined {
  const m = /^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)$/.exec(version);
  return m ? m.slice(1).map(Number) : undefined;
}

/** An agent may run the server's K3s release or an older one, never a newer one (Kubernetes' version skew policy). */
export function agentNewerThanServer(agent: K3sNode, server: ClusterServer): string | undefined {
  if (v.isToken(agent.version) || v.isToken(server.version)) return undefined;
  const a = k3sVersion(agent.version);
  const s = k3sVersion(server.version);
  if (!a || !s) return undefined;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === s[i]) continue;
    if (a[i] < s[i]) return undefined;
    return `${agent.version} is newer than its server ${server.node.path}'s ${server.version}; a kubelet may not be newer than its API server. ` +
      "Upgrade the server first (or give the agent the server's version)";
  }
  return undefined;
}

/**
 * What the constructors themselves read, checked before they read it, so that callers without
 * types (plain JavaScript, jsii languages) get the bad-input message rather than a TypeError.
 */
export function requireHost(node: K3sNode, props: { host?: unknown }): void {
  const where = `${node.constructor.name} "${node.node.path}"`;
  const host = props?.host as { ssh?: unknown } | undefined;
  if (host === undefined || host === null || typeof host !== "object") {
    throw new Error(`${where}: host is required: { address: "203.0.113.10", ssh: { privateKeyPath: "~/.ssh/id_ed25519" } }`);
  }
  if (host.ssh === undefined || host.ssh === null || typeof host.ssh !== "object") {
    throw new Error(`${where}: host.ssh is required: give at least { privateKeyPath } or { agent: true }`);
  }
}

/** requireHost, and the server an agent joins. */
export function requireHostAndServer(agent: K3sNode, props: { host?: unknown; server?: unknown }): void {
  requireHost(agent, props);
  if (!isServer(props.server)) {
    throw new Error(`K3sAgent "${agent.node.path}": server: pass the K3sServer construct this agent joins`);
  }
}

/** A sensitive source of a cluster: the resource or data source its values are read from, and what to call them. */
export interface SensitiveSource {
  /** Its address is `fqn` (`data.local_sensitive_file.server_credentials-secrets_1A2B3C4D`). */
  readonly element: IConstruct & { readonly fqn: string };
  /** What the user passed, by the field read from the source (or "" for the whole source). */
  readonly names: Record<string, string>;
}

const resolveIn = (scope: IConstruct, value: unknown) =>
  Tokenization.resolve(value, { scope: TerraformStack.of(scope), resolver: new DefaultTokenResolver(new StringConcat()), preparing: false });

/**
 * TerraformOutputs of the whole app (any stack) that show one of the clusters' sensitive values
 * (kubeconfig, client key and certificate, tokens, the datastore endpoint) without `sensitive: true`.
 * Terraform refuses them only at validate/plan ("Output refers to sensitive values"); here they
 * fail the synth, naming the output and the fix. An output that calls nonsensitive() is the
 * user's decision and is left alone. A value from another stack reaches an output through
 * cdktf's remote-state lookup, which this check cannot follow.
 */
export function sensitiveOutputErrors(where: string, app: IConstruct, sources: SensitiveSource[]): string[] {
  const errors: string[] = [];
  const addresses = sources.map((src) => ({ ...src, address: String(resolveIn(src.element, src.element.fqn)).replace(/^\$\{(.*)\}$/, "$1") }));
  for (const o of app.node.findAll()) {
    if (!TerraformOutput.isTerraformOutput(o)) continue;
    let text: string | undefined;
    try {
      // As synthesized: overrides applied, a resource given as value turned into its address.
      const body = resolveIn(o, Object.values(o.toTerraform().output)[0]);
      if (body?.sensitive === true) continue;
      text = JSON.stringify(body?.value);
    } catch {
      continue;
    }
    if (text === undefined || /\bnonsensitive\(/.test(text)) continue;
    const found = new Set<string>();
    for (const src of addresses) {
      // A JSON source is read as jsondecode(<address>.content).<field> (cdktf's form of
      // lookup(jsondecode(…), "<field>", "")): name the field.
      const uses = new RegExp(`${src.address.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.\\w+(?:\\)\\.(\\w+)|\\), \\\\?"(\\w+)\\\\?")?`, "g");
      for (const m of text.matchAll(uses)) {
        const field = m[1] ?? m[2];
        const named = (field !== undefined ? src.names[field] : undefined) ?? src.names[""];
        if (named) found.add(named);
      }
    }
    if (found.size === 0 && /(^|[^A-Za-z0-9_])sensitive\(/.test(text)) found.add("a value marked sensitive (sensitive(...))");
    if (found.size === 0) continue;
    errors.push(`${where}: TerraformOutput "${o.node.path}" (output "${o.friendlyUniqueId}") shows ${[...found].join(" and ")} without sensitive: true, ` +
      "so terraform validate and plan would fail with \"Output refers to sensitive values\". " +
      "Add sensitive: true to that TerraformOutput (new TerraformOutput(scope, id, { value, sensitive: true })); read it with terraform output -raw <name>");
  }
  return errors;
}
