/**
 * The article's cluster with a highly available control plane: three servers (embedded etcd) in
 * one provider's region, on a private network they share, behind one registration address; five
 * agents on three providers, one firewall and one Kilo mesh for the whole cluster, and upgrades
 * that roll two agents at a time. K3s supports embedded etcd within one location only (its etcd
 * peers at the servers' private addresses); servers spread over providers need an external
 * datastore (`datastoreEndpoint`), and synth warns otherwise.
 *
 * `apiAddress` is the registration address: a DNS name with an A record per server (or a load
 * balancer / floating IP on 6443). Agents, joining servers, the kubeconfig and the mesh stack all
 * use it, so losing any one server — the first included — leaves the cluster reachable.
 * Synthesize with `node examples/article-cluster/ha.js` after `tsc -p tsconfig.examples.json`.
 */
import { App, TerraformStack } from "cdktf";
import { K3sAgent, K3sServer, KiloMesh, PeerFirewall, SshConnection } from "../../lib";
import { summarize } from "../summarize";

export function buildHaArticleCluster(app: App): { cluster: TerraformStack; mesh: TerraformStack; servers: K3sServer[]; agents: K3sAgent[] } {
  const cluster = new TerraformStack(app, "cluster");
  const ssh: SshConnection = { user: "root", privateKeyPath: "~/.ssh/id_ed25519" };

  const first = new K3sServer(cluster, "server-a", {
    host: { address: "203.0.113.10", privateAddress: "10.0.0.10", location: "provider-a", ssh },
    apiAddress: "k8s.example.com",
    rollout: { maxUnavailable: 2 },
  });
  // Joined one at a time, in this order, with the CA-pinned server token.
  const servers = [first,
    new K3sServer(cluster, "server-b", { join: first, host: { address: "203.0.113.20", privateAddress: "10.0.0.20", location: "provider-a", ssh } }),
    new K3sServer(cluster, "server-c", { join: first, host: { address: "203.0.113.30", privateAddress: "10.0.0.30", location: "provider-a", ssh } }),
  ];
  const agents = [
    ["vps-b", "203.0.113.21", "provider-b"],
    ["vps-c", "198.51.100.31", "provider-c"],
    ["vps-d", "198.51.100.32", "provider-c"],
    ["vps-e", "203.0.113.22", "provider-b"],
    ["vps-f", "203.0.113.11", "provider-a"],
  ].map(([nodeName, address, location], i) => new K3sAgent(cluster, `agent-${i + 1}`, {
    server: servers[i % servers.length], nodeName, host: { address, location, ssh },
  }));

  // Every server and agent: etcd between the servers only, the API from every node to every server.
  new PeerFirewall(cluster, "firewall", { server: first, adminCidrs: ["192.0.2.0/28"] });
  const mesh = new TerraformStack(app, "mesh");
  new KiloMesh(mesh, "kilo", { server: first });
  return { cluster, mesh, servers, agents };
}

if (require.main === module) {
  const outdir = process.env.CDKTF_OUTDIR ?? "cdktf.out";
  const app = new App({ outdir });
  buildHaArticleCluster(app);
  app.synth();
  console.log(summarize(app, outdir));
}
