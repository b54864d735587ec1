export * from "./host/host";
export * from "./versions";
export * from "./constructs/k3s-node";
export * from "./constructs/k3s-server";
export * from "./constructs/k3s-agent";
export * from "./constructs/peer-firewall";
export * from "./constructs/kilo-mesh";
export { ClusterReport, ClusterReportOptions } from "./constructs/cluster-report";
