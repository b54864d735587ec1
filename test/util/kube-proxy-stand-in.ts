/**
 * STAND-IN for kube-proxy (iptables mode), for the real-host NodePort tests. kube-proxy cannot run
 * on the test machines (it needs a Kubernetes API server), so this renders the iptables rules that
 * kube-proxy writes for one Service, in kube-proxy's own shapes, for iptables-restore --noflush.
 *
 * Shapes from kubernetes/kubernetes pkg/proxy/iptables/proxier.go (syncProxyRules and
 * iptablesJumpChains): jumps prepended to nat PREROUTING/OUTPUT (KUBE-SERVICES), nat POSTROUTING
 * (KUBE-POSTROUTING) and filter FORWARD (KUBE-FORWARD); KUBE-MARK-MASQ sets 0x4000; KUBE-FORWARD
 * accepts packets carrying that mark (and RELATED,ESTABLISHED) "so NodePort traffic is forwarded
 * even if the default FORWARD policy is not accept"; the last rule of KUBE-SERVICES jumps to
 * KUBE-NODEPORTS for `-m addrtype --dst-type LOCAL` when nodePortAddresses matches everything,
 * otherwise once per local address inside the nodePortAddresses CIDRs (`-d <ip>`); a
 * LoadBalancer ingress IP gets its own KUBE-SERVICES rule ("loadbalancer IP") to the same
 * external chain. Left out: health-check ports, KUBE-EXTERNAL-SERVICES rejects for services
 * without endpoints, KUBE-PROXY-FIREWALL (loadBalancerSourceRanges), session affinity.
 */
import * as ipaddr from "ipaddr.js";

export interface StandInService {
  /** kube-proxy's --nodeport-addresses CIDRs; any /0 means every local address. */
  readonly nodePortAddresses: string[];
  /** The node's local IPv4 addresses (what kube-proxy's GetNodeIPs would list). */
  readonly localAddresses: string[];
  readonly clusterIp: string;
  readonly port: number;
  readonly nodePort: number;
  /** The one endpoint, `ip:port` of a pod. */
  readonly endpoint: string;
  readonly podCidr: string;
  /** LoadBalancer ingress IPs (what K3s's ServiceLB writes into the Service status: node addresses). */
  readonly loadBalancerIps?: string[];
}

const SVC = "default/web:http";

/** The iptables-restore input (both tables) for one Service with one endpoint. */
export function kubeProxyStandInRules(s: StandInService): string {
  const matchAll = s.nodePortAddresses.some((c) => c.endsWith("/0"));
  const nodeIps = matchAll ? [] : s.localAddresses.filter((a) => s.nodePortAddresses.some((c) => {
    const [net, bits] = ipaddr.parseCIDR(c);
    const ip = ipaddr.parse(a);
    return ip.kind() === net.kind() && ip.match(net, bits);
  }));
  const [epIp] = s.endpoint.split(":");
  const nat = [
    "*nat",
    ":KUBE-SERVICES - [0:0]",
    ":KUBE-NODEPORTS - [0:0]",
    ":KUBE-POSTROUTING - [0:0]",
    ":KUBE-MARK-MASQ - [0:0]",
    ":KUBE-SVC-STANDIN - [0:0]",
    ":KUBE-EXT-STANDIN - [0:0]",
    ":KUBE-SEP-STANDIN - [0:0]",
    "-I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    "-I OUTPUT 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    "-I POSTROUTING 1 -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
    "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
    "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
    "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
    "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE",
    `-A KUBE-SERVICES -d ${s.clusterIp}/32 -p tcp -m comment --comment "${SVC} cluster IP" -m tcp --dport ${s.port} -j KUBE-SVC-STANDIN`,
    ...(s.loadBalancerIps ?? []).map((ip) =>
      `-A KUBE-SERVICES -d ${ip}/32 -p tcp -m comment --comment "${SVC} loadbalancer IP" -m tcp --dport ${s.port} -j KUBE-EXT-STANDIN`),
    ...(matchAll
      ? ["-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"]
      : nodeIps.map((ip) => `-A KUBE-SERVICES -d ${ip}/32 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS`)),
    `-A KUBE-NODEPORTS -p tcp -m comment --comment "${SVC}" -m tcp --dport ${s.nodePort} -j KUBE-EXT-STANDIN`,
    `-A KUBE-EXT-STANDIN -m comment --comment "masquerade traffic for ${SVC} external destinations" -j KUBE-MARK-MASQ`,
    "-A KUBE-EXT-STANDIN -j KUBE-SVC-STANDIN",
    `-A KUBE-SVC-STANDIN ! -s ${s.podCidr} -d ${s.clusterIp}/32 -p tcp -m comment --comment "${SVC} cluster IP" -m tcp --dport ${s.port} -j KUBE-MARK-MASQ`,
    `-A KUBE-SVC-STANDIN -m comment --comment "${SVC} -> ${s.endpoint}" -j KUBE-SEP-STANDIN`,
    `-A KUBE-SEP-STANDIN -s ${epIp}/32 -m comment --comment "${SVC}" -j KUBE-MARK-MASQ`,
    `-A KUBE-SEP-STANDIN -p tcp -m comment --comment "${SVC}" -m tcp -j DNAT --to-destination ${s.endpoint}`,
    "COMMIT",
  ];
  const filter = [
    "*filter",
    ":KUBE-FORWARD - [0:0]",
    "-I FORWARD 1 -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
    "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
    "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT",
    "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "COMMIT",
  ];
  return [...filter, ...nat, ""].join("\n");
}

/** iptables-restore --noflush input that removes what kubeProxyStandInRules added. */
export function kubeProxyStandInRemoval(): string {
  const natChains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-SVC-STANDIN", "KUBE-EXT-STANDIN", "KUBE-SEP-STANDIN"];
  return [
    "*filter",
    "-D FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
    "-F KUBE-FORWARD",
    "-X KUBE-FORWARD",
    "COMMIT",
    "*nat",
    "-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    "-D OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    "-D POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
    ...natChains.map((c) => `-F ${c}`),
    ...natChains.map((c) => `-X ${c}`),
    "COMMIT",
    "",
  ].join("\n");
}
