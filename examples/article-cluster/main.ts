/**
 * The article's cluster: one K3s server and five agents on VPSes from different providers, on public
 * addresses only, joined into a full Kilo WireGuard mesh, every host firewalled to its peers.
 * Addresses are from the documentation ranges; replace them (or use your provider resources'
 * attributes) and `cdktf deploy '*'`. `npm run example` synthesizes it and prints a summary.
 */
import { App, TerraformStack } from "cdktf";
import { K3sAgent, K3sServer, KiloMesh, PeerFirewall, SshConnection } from "../../lib";
import { writeClusterReport } from "../cluster-report";
import { summarize } from "../summarize";

export function buildArticleCluster(app: App): { cluster: TerraformStack; mesh: TerraformStack } {
  const cluster = new TerraformStack(app, "cluster");
  const ssh: SshConnection = { user: "root", privateKeyPath: "~/.ssh/id_ed25519" };

  const server = new K3sServer(cluster, "server", {
    host: { address: "203.0.113.10", location: "provider-a", ssh },
    nodeName: "k3s-server",
  });
  const agents = [
    new K3sAgent(cluster, "agent-1", { server, nodeName: "vps-b", host: { address: "203.0.113.21", location: "provider-b", ssh } }),
    // Reachable over SSH only through the server (a jump host); K3s and WireGuard still go direct.
    new K3sAgent(cluster, "agent-2", {
      server, nodeName: "vps-c",
      host: { address: "198.51.100.31", location: "provider-c", ssh: { ...ssh, user: "ubuntu", bastion: { host: "203.0.113.10", user: "root" } } },
    }),
    // A free-tier VM behind 1:1 NAT: the public IP is not on its interface.
    new K3sAgent(cluster, "agent-3", {
      server, nodeName: "gcp-free",
      host: { address: "198.51.100.41", privateAddress: "10.128.0.2", publicAddressOnInterface: false, location: "gcp", ssh: { ...ssh, user: "ubuntu" } },
    }),
    new K3sAgent(cluster, "agent-4", {
      server, nodeName: "oci-free",
      host: { address: "198.51.100.42", privateAddress: "10.0.0.12", publicAddressOnInterface: false, location: "oci", ssh: { ...ssh, user: "ubuntu" } },
    }),
    // A small board at home behind the router's NAT (port 22 forwarded to it): Kilo keeps its tunnels
    // open with keepalives, since nothing can connect to it first.
    new K3sAgent(cluster, "agent-5", {
      server, nodeName: "home-pi",
      host: { address: "192.0.2.50", behindNat: true, location: "home", ssh: { ...ssh, user: "pi" } },
    }),
  ];
  void agents; // each agent registers with its server: server.clusterNodes is the node list

  // Every host of the server's cluster lets in only its peers, plus SSH and the API from the operator's network.
  new PeerFirewall(cluster, "firewall", { server, adminCidrs: ["192.0.2.0/28"] });

  // Kilo needs a running API server to be planned: a second stack, deployed after the first.
  const mesh = new TerraformStack(app, "mesh");
  new KiloMesh(mesh, "kilo", { server });
  return { cluster, mesh };
}

if (require.main === module) {
  // `cdktf synth --output DIR` passes DIR as CDKTF_OUTDIR; cdktf.out otherwise.
  const outdir = process.env.CDKTF_OUTDIR ?? "cdktf.out";
  const app = new App({ outdir });
  buildArticleCluster(app);
  app.synth();
  console.log(summarize(app, outdir));
  // The picture of the cluster: <outdir>/cluster-report.{md,dot,svg}.
  writeClusterReport(app, outdir, { title: "The article's cluster: 1 server + 5 agents" })
    .then((paths) => console.log(`\nCluster report: ${paths.join(", ")}`))
    .catch((e) => { console.error(e); process.exitCode = 1; });
}
