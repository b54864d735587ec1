/**
 * One K3s cluster from three places that share no network:
 * - two DigitalOcean droplets (the server and an agent), public IP on the interface;
 * - a Google Cloud free-tier e2-micro agent, whose public IP is 1:1 NAT (not on the interface);
 * - a Raspberry Pi at home behind the router's NAT, given by address.
 * Node addresses come from the provider resources' attributes (Terraform tokens); one SSH key
 * file is registered with both providers; credentials come only from environment variables.
 * See README.md beside this file.
 */
import { App, Fn, TerraformStack } from "cdktf";
// Deep imports: only the resources used, not the providers' thousand-resource index files.
import { DigitaloceanProvider } from "@cdktf/provider-digitalocean/lib/provider";
import { Droplet } from "@cdktf/provider-digitalocean/lib/droplet";
import { SshKey } from "@cdktf/provider-digitalocean/lib/ssh-key";
import { GoogleProvider } from "@cdktf/provider-google/lib/provider";
import { ComputeInstance } from "@cdktf/provider-google/lib/compute-instance";
import { ComputeFirewall } from "@cdktf/provider-google/lib/compute-firewall";
import { K3sAgent, K3sServer, KiloMesh, PeerFirewall, SshConnection } from "../../lib";

/** Settings the example reads from the environment (none of them secret). */
export interface MultiProviderSettings {
  /** Private key on the deploying machine; `<path>.pub` is registered with both providers. */
  readonly privateKeyPath: string;
  /** The network you administer the cluster from (must include the deploying machine). */
  readonly adminCidr: string;
  /** The home router's public address, whose port 22 is forwarded to the Pi. */
  readonly homeAddress: string;
  readonly doRegion: string;
  readonly gcpZone: string;
}

export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): MultiProviderSettings {
  return {
    privateKeyPath: env.SSH_PRIVATE_KEY_PATH ?? "~/.ssh/id_ed25519",
    adminCidr: env.ADMIN_CIDR ?? "192.0.2.0/28",
    homeAddress: env.HOME_PI_ADDRESS ?? "192.0.2.50",
    doRegion: env.DO_REGION ?? "fra1",
    // The always-free e2-micro exists in us-west1, us-central1 and us-east1 only.
    gcpZone: env.GCP_ZONE ?? "us-central1-a",
  };
}

export interface MultiProviderCluster {
  readonly cluster: TerraformStack;
  readonly mesh: TerraformStack;
  readonly server: K3sServer;
  readonly agents: K3sAgent[];
  readonly firewall: PeerFirewall;
  readonly kilo: KiloMesh;
  readonly droplets: Droplet[];
  readonly gcpInstance: ComputeInstance;
}

export function buildMultiProviderCluster(app: App, s: MultiProviderSettings = settingsFromEnv()): MultiProviderCluster {
  const cluster = new TerraformStack(app, "cluster");

  // Credentials: DigitalOcean reads DIGITALOCEAN_TOKEN; Google reads Application Default
  // Credentials (gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS) and
  // GOOGLE_PROJECT. Nothing secret appears here or in cdktf.out.
  new DigitaloceanProvider(cluster, "digitalocean", {});
  const gcpRegion = s.gcpZone.replace(/-[a-z]$/, "");
  new GoogleProvider(cluster, "google", { region: gcpRegion, zone: s.gcpZone });

  // One key pair for everything: Terraform reads the public half when it plans.
  const publicKey = Fn.trimspace(Fn.file(Fn.pathexpand(`${s.privateKeyPath}.pub`)));
  const doKey = new SshKey(cluster, "ssh-key", { name: "cdktf-k3s-kilo", publicKey });

  const droplet = (id: string) => new Droplet(cluster, id, {
    name: id,
    region: s.doRegion,
    size: "s-1vcpu-1gb",
    image: "ubuntu-24-04-x64",
    sshKeys: [doKey.fingerprint],
  });
  const doServer = droplet("k3s-do-server");
  const doAgent = droplet("k3s-do-agent");

  const gcp = new ComputeInstance(cluster, "k3s-gcp-free", {
    name: "k3s-gcp-free",
    machineType: "e2-micro", // the always-free machine type
    zone: s.gcpZone,
    tags: ["k3s-node"],
    bootDisk: { initializeParams: { image: "ubuntu-os-cloud/ubuntu-2404-lts-amd64", size: 30, type: "pd-standard" } },
    // An access config gives the instance an external address: 1:1 NAT in front of network_ip.
    networkInterface: [{ network: "default", accessConfig: [{}] }],
    // GCE's guest agent creates the user "ubuntu" with this key.
    metadata: { "ssh-keys": Fn.join("", ["ubuntu:", publicKey]) },
  });
  const gcpNic = gcp.networkInterface.get(0);

  const ssh = (user: string): SshConnection => ({ user, privateKeyPath: s.privateKeyPath });

  const server = new K3sServer(cluster, "server", {
    nodeName: "do-server",
    host: { address: doServer.ipv4Address, location: `digitalocean-${s.doRegion}`, ssh: ssh("root") },
  });
  const agents = [
    new K3sAgent(cluster, "do-agent", {
      server, nodeName: "do-agent",
      host: { address: doAgent.ipv4Address, location: `digitalocean-${s.doRegion}`, ssh: ssh("root") },
    }),
    new K3sAgent(cluster, "gcp-agent", {
      server, nodeName: "gcp-free",
      host: {
        address: gcpNic.accessConfig.get(0).natIp, // the public address, translated by Google's NAT
        privateAddress: gcpNic.networkIp,          // the address on the VM's interface
        publicAddressOnInterface: false,
        location: `gcp-${gcpRegion}`,
        ssh: ssh("ubuntu"),
      },
      // 1 GB of memory: K3s's agent fits, with room for a few small pods.
      labels: { "node.kubernetes.io/instance-type": "e2-micro" },
    }),
    new K3sAgent(cluster, "home-pi", {
      server, nodeName: "home-pi",
      // The router's public address; port 22 forwarded to the Pi. Nothing else is forwarded:
      // Kilo keeps the Pi's tunnels open from the inside with keepalives.
      host: { address: s.homeAddress, behindNat: true, location: "home", ssh: ssh("pi") },
    }),
  ];
  // ufw on every host of the server's cluster (every agent above registered with it).
  const firewall = new PeerFirewall(cluster, "firewall", { server, adminCidrs: [s.adminCidr] });

  // Google's VPC firewall sits in front of the VM's own: let the peers' WireGuard and kubelet
  // traffic through it (SSH is open in the default network), and the admin network to SSH.
  const peers = [doServer.ipv4Address, doAgent.ipv4Address, s.homeAddress].map((a) => Fn.join("", [a, "/32"]));
  new ComputeFirewall(cluster, "gcp-peers", {
    name: "k3s-peers",
    network: "default",
    targetTags: ["k3s-node"],
    sourceRanges: peers,
    allow: [{ protocol: "udp", ports: ["51820"] }, { protocol: "tcp", ports: ["10250"] }],
  });
  new ComputeFirewall(cluster, "gcp-admin", {
    name: "k3s-admin",
    network: "default",
    targetTags: ["k3s-node"],
    sourceRanges: [s.adminCidr],
    allow: [{ protocol: "tcp", ports: ["22"] }],
  });

  // Kilo needs the API server at plan time: its own stack, deployed after the cluster.
  const mesh = new TerraformStack(app, "mesh");
  const kilo = new KiloMesh(mesh, "kilo", { server });

  return { cluster, mesh, server, agents, firewall, kilo, droplets: [doServer, doAgent], gcpInstance: gcp };
}

if (require.main === module) {
  const outdir = process.env.CDKTF_OUTDIR ?? "cdktf.out";
  const app = new App({ outdir });
  buildMultiProviderCluster(app);
  app.synth();
  // The picture: cluster-report.{md,dot,svg} next to the stacks (the SVG needs the root's devDependencies).
  import("../cluster-report")
    .then(({ writeClusterReport }) => writeClusterReport(app, outdir, { title: "DigitalOcean + Google Cloud free tier + a Pi at home" }))
    .then((paths) => console.log(`Synthesized into ${outdir}/; report: ${paths.join(", ")}`))
    .catch((e) => { console.error(e); process.exitCode = 1; });
}
