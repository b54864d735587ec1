/**
 * K3sServer: the control plane on one host, Kilo-ready, with its tokens generated here and its
 * admin kubeconfig and CA-pinned agent join token read back through Terraform.
 */
import { Fn, Lazy, TerraformOutput, TerraformStack, Token } from "cdktf";
import { Construct } from "constructs";
import * as dataLocalCommand from "@cdktf/provider-local/lib/data-local-command";
import * as dataLocalSensitiveFile from "@cdktf/provider-local/lib/data-local-sensitive-file";
import * as sensitiveFile from "@cdktf/provider-local/lib/sensitive-file";
import * as password from "@cdktf/provider-random/lib/password";
import { connectionDescription, destroyTimeConnection } from "../host/connection";
import * as v from "../host/validate";
import { serverConfig } from "../render/k3s-config";
import { renderUninstallScript } from "../render/uninstall-script";
import { ensureProvider, terraformLiteral } from "./internal";
import { duplicateAddresses, requireHost } from "./cluster-checks";
import { localPath } from "./local-path";
import { K3sNode, K3sNodeProps, NodeRole } from "./k3s-node";
import { join } from "path";

/** The program the kubeconfig fetch runs, inside this package. */
const FETCH_PROGRAM = join(__dirname, "..", "deploy", "fetch-kubeconfig.js");

/**
 * Settings of a K3s server.
 */
export interface K3sServerProps extends K3sNodeProps {
  /**
   * Name of the cluster in the kubeconfig (cluster, context and user names derive from it).
   * @default "k3s"
   */
  readonly clusterName?: string;
  /**
   * The address clients and agents reach the API at; written into the kubeconfig and the
   * agents' server URL, and added to the certificate's names.
   * @default - host.address
   */
  readonly apiAddress?: string;
  /**
   * Extra names or addresses for the API server certificate (DNS names, load balancers).
   * @default - only apiAddress and host.address
   */
  readonly tlsSans?: string[];
  /**
   * Pod network. Kilo reads each node's share of it from Kubernetes.
   * @default "10.42.0.0/16"
   */
  readonly clusterCidr?: string;
  /**
   * Service network.
   * @default "10.43.0.0/16"
   */
  readonly serviceCidr?: string;
  /**
   * Encrypt Secrets at rest in the datastore.
   * @default true
   */
  readonly secretsEncryption?: boolean;
  /**
   * Enforce NetworkPolicy with K3s's embedded controller (kube-router's network policy
   * firewall, the enforcement Kilo documents). Set false only if you run another policy engine.
   * @default true
   */
  readonly networkPolicy?: boolean;
  /**
   * Run K3s's ServiceLB (klipper-lb), which serves every LoadBalancer Service (Traefik's 80/443
   * included) on the nodes' own addresses. kube-proxy accepts that traffic before ufw sees it, so
   * with ServiceLB on, every LoadBalancer port is open to the Internet on every node, whatever
   * PeerFirewall says.
   * @default false
   */
  readonly serviceLoadBalancer?: boolean;
  /**
   * Also write the admin kubeconfig to this local file (mode 0600) on the machine running
   * `cdktf deploy`. It is rewritten on every apply that changes it, so deleting it is harmless.
   * `~` is expanded on the deploying machine, as for `privateKeyPath`; a relative path is relative
   * to the project directory (where `cdktf synth` runs, the one with cdktf.json), not to the
   * stack's directory under cdktf.out, and is written into the synthesized stack as an absolute path.
   * @default - no file; read the `kubeconfig` attribute instead
   */
  readonly kubeconfigPath?: string;
  /**
   * Add Terraform outputs to the server's stack: `<id>_api_server_url`, `<id>_nodes` (every
   * node of the cluster: node name → address) and `<id>_kubeconfig` (sensitive: `cdktf output`
   * and `terraform output` hide it unless asked by name).
   * @default false
   */
  readonly outputs?: boolean;
}

/**
 * A K3s server installed over SSH, with flannel off so Kilo can be the CNI.
 *
 * Generates the server token and a separate agent token; agents only ever receive the latter,
 * in the secure `K10<CA hash>::` form that makes them verify the server before joining.
 */
export class K3sServer extends K3sNode {
  /** The admin kubeconfig, rewritten to `apiServerUrl` (sensitive). */
  public readonly kubeconfig: string;
  /** https://apiAddress:6443 */
  public readonly apiServerUrl: string;
  /** The cluster CA certificate (PEM). */
  public readonly clusterCaCertificate: string;
  /** The admin client certificate (PEM, sensitive). */
  public readonly clientCertificate: string;
  /** The admin client key (PEM, sensitive). */
  public readonly clientKey: string;
  /** sha256 of the cluster CA: the pin in the agents' join token. */
  public readonly caHash: string;
  /** The token agents join with, `K10<caHash>::node:<secret>` (sensitive). */
  public readonly agentJoinToken: string;
  /** Pod network CIDR. */
  public readonly clusterCidr: string;
  /** Service network CIDR. */
  public readonly serviceCidr: string;
  /** @internal The agent token's secret part (random_password), known at plan time. */
  public readonly _agentTokenSecret: string;
  /** Name of the cluster in the kubeconfig. */
  public readonly clusterName: string;
  /** The address clients and agents reach the API at. */
  public readonly apiAddress: string;
  /** Agents that join this server, in the order they were created (they register themselves). */
  private readonly agents: K3sNode[] = [];

  constructor(scope: Construct, id: string, props: K3sServerProps) {
    super(scope, id, props, NodeRole.SERVER);
    requireHost(this, props);
    ensureProvider(this, "random");
    ensureProvider(this, "local");
    this.clusterName = props.clusterName ?? "k3s";
    this.clusterCidr = props.clusterCidr ?? "10.42.0.0/16";
    this.serviceCidr = props.serviceCidr ?? "10.43.0.0/16";
    this.apiAddress = props.apiAddress ?? props.host?.address;
    this.apiServerUrl = `https://${bracketIpv6(this.apiAddress)}:6443`;
    this.node.addValidation({ validate: () => this.validateServer(props) });

    // Letters and digits only: safe in YAML, URLs and the `K10…::node:<secret>` join token.
    const serverToken = new password.Password(this, "server-token", { length: 48, special: false });
    const agentToken = new password.Password(this, "agent-token", { length: 48, special: false });
    this._agentTokenSecret = agentToken.result;

    const h = this.host;
    const config = serverConfig({
      nodeName: this.nodeName,
      address: h.address,
      privateAddress: h.privateAddress,
      publicAddressOnInterface: h.publicAddressOnInterface ?? true,
      labels: this.labels,
      taints: this.taints,
      extraConfig: props.extraConfig ?? {},
      token: serverToken.result,
      agentToken: agentToken.result,
      tlsSans: [this.apiAddress, h.address, ...(props.tlsSans ?? [])],
      clusterCidr: this.clusterCidr,
      serviceCidr: this.serviceCidr,
      secretsEncryption: props.secretsEncryption ?? true,
      networkPolicy: props.networkPolicy ?? true,
      serviceLoadBalancer: props.serviceLoadBalancer ?? false,
      nodePortAddresses: this.nodePortAddresses,
    });
    this._wireInstall(config, this._installSettings(props), {}, [{
      "remote-exec": {
        when: "destroy",
        inline: [terraformLiteral(renderUninstallScript("server"))],
        connection: destroyTimeConnection(h),
      },
    }], []);

    // Read on every plan once the install has run: the kubeconfig can always be fetched again.
    // local_command's stdout is not a sensitive attribute (and is logged at TRACE), so the program
    // prints only public parts; the secret ones go to a 0600 file in a 0700 directory beside the
    // directory under Terraform's working directory, read back through local_sensitive_file, whose
    // content is sensitive.
    const secretsFile = Fn.abspath(`.cdktf-k3s-kilo-secrets/${this.node.addr}.json`);
    const fetch = new dataLocalCommand.DataLocalCommand(this, "credentials", {
      command: "node",
      arguments: [FETCH_PROGRAM],
      stdin: Fn.jsonencode({
        ...connectionDescription(h),
        api_server_url: this.apiServerUrl,
        cluster_name: this.clusterName,
        secrets_file: secretsFile,
      }),
      dependsOn: [this._installStep],
    });
    const secrets = new dataLocalSensitiveFile.DataLocalSensitiveFile(this, "credentials-secrets", {
      filename: Fn.lookup(Fn.jsondecode(fetch.stdout), "secrets_file", ""),
      dependsOn: [fetch],
    });
    const field = (name: string) => Fn.lookup(Fn.jsondecode(fetch.stdout), name, "");
    const secret = (name: string) => Fn.sensitive(Fn.lookup(Fn.jsondecode(secrets.content), name, ""));
    this.kubeconfig = secret("kubeconfig");
    this.clusterCaCertificate = field("cluster_ca_certificate");
    this.clientCertificate = secret("client_certificate");
    this.clientKey = secret("client_key");
    this.caHash = field("ca_hash");
    this.agentJoinToken = Fn.sensitive(Fn.join("", ["K10", this.caHash, "::node:", agentToken.result]));

    if (props.kubeconfigPath !== undefined) {
      new sensitiveFile.SensitiveFile(this, "kubeconfig-file", {
        filename: localPath(props.kubeconfigPath),
        content: this.kubeconfig,
        filePermission: "0600",
        directoryPermission: "0700",
      });
    }
    if (props.outputs === true) this.addOutputs();
    // The cluster's description for `cdktf-k3s-kilo-report` (under "//", which Terraform ignores),
    // computed at synth once every agent, firewall and mesh exists. Required lazily: the report
    // module imports the constructs that import this one.
    TerraformStack.of(this).addOverride(`//.cdktf-k3s-kilo.${this.node.path.replace(/\./g, "_")}`, Lazy.anyValue({
      produce: () => require("./cluster-report").embeddedReport(this),
    }));
  }

  /**
   * The whole cluster: this server and every agent that joins it, in the order they were created
   * (decommissioned agents included). PeerFirewall and KiloMesh cover these nodes by default.
   */
  public get clusterNodes(): K3sNode[] {
    return [this, ...this.agents];
  }

  /** @internal Called by K3sAgent: an agent that joins this server becomes part of its cluster. */
  public _registerAgent(agent: K3sNode): void {
    if (!this.agents.includes(agent)) this.agents.push(agent);
  }

  /** Outputs a user would otherwise write by hand; the node map is computed at synth, once every agent has registered. */
  private addOutputs(): void {
    const stack = TerraformStack.of(this);
    const prefix = this.node.scopes.slice(this.node.scopes.indexOf(stack) + 1).map((s) => s.node.id).join("_").replace(/[^A-Za-z0-9_-]/g, "_");
    const output = (name: string, value: unknown, description: string, sensitive = false) =>
      new TerraformOutput(this, `output-${name}`, { value, description, sensitive }).overrideLogicalId(`${prefix}_${name}`);
    output("api_server_url", this.apiServerUrl, `Kubernetes API of ${this.clusterName}`);
    output("nodes", Lazy.anyValue({
      produce: () => Object.fromEntries(this.clusterNodes.filter((n) => !n.decommissioned).map((n) => [n.nodeName, n.host.address])),
    }), "Every node of the cluster: node name → public address");
    output("kubeconfig", this.kubeconfig, "Admin kubeconfig (sensitive): cdktf output / terraform output -raw <name>", true);
  }

  private validateServer(props: K3sServerProps): string[] {
    const errors: string[] = [];
    const err = (field: string, msg: string | undefined) => { if (msg) errors.push(`K3sServer "${this.node.path}": ${field}: ${msg}`); };
    if (props.apiAddress !== undefined) err("apiAddress", v.checkAddress(props.apiAddress));
    for (const san of props.tlsSans ?? []) err("tlsSans", v.checkAddress(san));
    if (props.clusterCidr !== undefined) err("clusterCidr", v.checkCidr(props.clusterCidr));
    if (props.serviceCidr !== undefined) err("serviceCidr", v.checkCidr(props.serviceCidr));
    if (props.clusterName !== undefined) err("clusterName", v.checkNodeName(props.clusterName));
    if (props.host?.address !== undefined) err("host.address", v.checkNodeAddress(props.host.address));
    errors.push(...duplicateAddresses(this));
    const kp = props.kubeconfigPath;
    if (kp !== undefined && !v.isToken(kp) && (kp === "" || (/^~[^/]/.test(kp)))) {
      err("kubeconfigPath", `"${kp}": give a file path; only "~" and "~/…" are expanded (to the deploying user's home), not "~user"`);
    }
    const s = props.host?.ssh;
    if (s && s.privateKeyPath === undefined && s.agent === false) {
      err("host.ssh", "the kubeconfig fetch runs ssh on the deploying machine and needs privateKeyPath or the SSH agent");
    }
    return errors;
  }
}

function bracketIpv6(address: string): string {
  return !Token.isUnresolved(address) && address?.includes(":") ? `[${address}]` : address;
}
