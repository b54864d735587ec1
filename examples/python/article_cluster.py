"""The article's cluster, in Python: the same cluster as examples/article-cluster/main.ts.

One K3s server and five agents on VPSes from different providers, on public addresses only, joined
into a full Kilo WireGuard mesh, every host firewalled to its peers. Addresses are from the
documentation ranges; replace them (or use your provider resources' attributes) and
`cdktf deploy '*'`.

Run it with the package installed (see docs/python.md):

    python examples/python/article_cluster.py        # writes cdktf.out (or $CDKTF_OUTDIR)

test/python-package.test.ts runs it from the built wheel and compares both stacks' JSON with the
TypeScript app's.
"""
import os

from cdktf import App, TerraformStack
from cdktf_k3s_kilo import (
    Host,
    K3sAgent,
    K3sServer,
    KiloMesh,
    PeerFirewall,
    SshBastion,
    SshConnection,
)


def build_article_cluster(app: App) -> tuple[TerraformStack, TerraformStack]:
    cluster = TerraformStack(app, "cluster")
    key = "~/.ssh/id_ed25519"
    ssh = SshConnection(user="root", private_key_path=key)

    server = K3sServer(
        cluster, "server",
        host=Host(address="203.0.113.10", location="provider-a", ssh=ssh),
        node_name="k3s-server",
    )
    K3sAgent(cluster, "agent-1", server=server, node_name="vps-b",
             host=Host(address="203.0.113.21", location="provider-b", ssh=ssh))
    # Reachable over SSH only through the server (a jump host); K3s and WireGuard still go direct.
    K3sAgent(cluster, "agent-2", server=server, node_name="vps-c",
             host=Host(address="198.51.100.31", location="provider-c",
                       ssh=SshConnection(user="ubuntu", private_key_path=key,
                                         bastion=SshBastion(host="203.0.113.10", user="root"))))
    # A free-tier VM behind 1:1 NAT: the public IP is not on its interface.
    K3sAgent(cluster, "agent-3", server=server, node_name="gcp-free",
             host=Host(address="198.51.100.41", private_address="10.128.0.2",
                       public_address_on_interface=False, location="gcp",
                       ssh=SshConnection(user="ubuntu", private_key_path=key)))
    K3sAgent(cluster, "agent-4", server=server, node_name="oci-free",
             host=Host(address="198.51.100.42", private_address="10.0.0.12",
                       public_address_on_interface=False, location="oci",
                       ssh=SshConnection(user="ubuntu", private_key_path=key)))
    # A small board at home behind the router's NAT (port 22 forwarded to it): Kilo keeps its
    # tunnels open with keepalives, since nothing can connect to it first.
    K3sAgent(cluster, "agent-5", server=server, node_name="home-pi",
             host=Host(address="192.0.2.50", behind_nat=True, location="home",
                       ssh=SshConnection(user="pi", private_key_path=key)))
    # Each agent registers with its server: server.cluster_nodes is the node list.

    # Every host of the server's cluster lets in only its peers, plus SSH and the API from the
    # operator's network.
    PeerFirewall(cluster, "firewall", server=server, admin_cidrs=["192.0.2.0/28"])

    # Kilo needs a running API server to be planned: a second stack, deployed after the first.
    mesh = TerraformStack(app, "mesh")
    KiloMesh(mesh, "kilo", server=server)
    return cluster, mesh


if __name__ == "__main__":
    # `cdktf synth --output DIR` passes DIR as CDKTF_OUTDIR; cdktf.out otherwise.
    app = App(outdir=os.environ.get("CDKTF_OUTDIR", "cdktf.out"))
    build_article_cluster(app)
    app.synth()
