/**
 * Checks that look at the cluster as a whole rather than at one construct's props: the node
 * list each PeerFirewall and KiloMesh covers, settings that must agree between them, duplicate
 * addresses, version skew. Each returns messages in the bad-input style (construct, field, fix).
 */
import * as v from "../host/validate";
import { K3sNode } from "./k3s-node";
import { K3sServer } from "./k3s-server";

/** The servers whose clusters `nodes` touch: the servers among them and the servers their agents join. */
export function serversOf(nodes: K3sNode[]): K3sServer[] {
  const servers = new Set<K3sServer>();
  for (const n of nodes) {
    if (n instanceof K3sServer) servers.add(n);
    const joins = (n as { server?: unknown }).server;
    if (joins instanceof K3sServer) servers.add(joins);
  }
  return [...servers];
}

/**
 * Members of the clusters of `servers` that `covered` leaves out. A node left out of a firewall
 * gets none and its peers drop its traffic; left out of the mesh, it loses its Kilo annotations.
 */
export function missingMembers(where: string, servers: K3sServer[], covered: K3sNode[], defaulted: boolean, construct: string): string[] {
  const have = new Set(covered);
  const errors: string[] = [];
  for (const server of servers) {
    for (const n of server.clusterNodes) {
      if (n.decommissioned || have.has(n)) continue;
      errors.push(defaulted
        ? `${where}: nodes: ${n.node.path} joined ${server.node.path} after this ${construct} was created, so it is not covered; create the ${construct} after every K3sAgent of the cluster`
        : `${where}: nodes: ${n.node.path} (${n === server ? "the server" : `joins ${server.node.path}`}) is missing; leave nodes out to cover the whole cluster, or add it`);
    }
  }
  return errors;
}

/** Two nodes of one cluster at the same address: the same machine twice, or a copy-paste slip. */
export function duplicateAddresses(server: K3sServer): string[] {
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

function k3sVersion(version: string): number[] | undefined {
  const m = /^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)$/.exec(version);
  return m ? m.slice(1).map(Number) : undefined;
}

/** An agent may run the server's K3s release or an older one, never a newer one (Kubernetes' version skew policy). */
export function agentNewerThanServer(agent: K3sNode, server: K3sServer): string | undefined {
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
  if (!(props.server instanceof K3sServer)) {
    throw new Error(`K3sAgent "${agent.node.path}": server: pass the K3sServer construct this agent joins`);
  }
}
