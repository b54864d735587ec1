/**
 * K3sAgent: a worker that joins a K3sServer with the CA-pinned agent token. It never receives
 * the server token or an admin kubeconfig. Destroying it drains it, deletes its Node and
 * removes K3s and Kilo from the host.
 */
import { Lazy } from "cdktf";
import { Construct } from "constructs";
import { connectionDescription, createTimeConnection, destroyTimeConnection } from "./connection";
import { rolloutAfterParts, rolloutBeforeParts } from "../render/rollout-script";
import { agentConfig } from "../render/k3s-config";
import { CDKTF_LATE_VALUES } from "./late-values";
import { renderDrainScript, renderUninstallScript } from "../render/uninstall-script";
import { sharedScriptInline, terraformLiteral } from "./internal";
import * as v from "./validate";
import { agentNewerThanServer, requireHostAndServer } from "./cluster-checks";
import { K3sNode, K3sNodeProps, NodeRole } from "./k3s-node";
import { K3sServer } from "./k3s-server";

/**
 * Settings of a K3s agent.
 */
export interface K3sAgentProps extends K3sNodeProps {
  /**
   * The server to join (any server of an HA cluster: the agent registers at the cluster's
   * registration address, K3sServer's `apiAddress`, and learns every server from there).
   * Must be in the same stack.
   */
  readonly server: K3sServer;
  /**
   * How long the agent's pods may take to drain: before a restart that changes K3s (a rolling
   * upgrade), and when the agent is destroyed; the restart or deletion goes ahead after that.
   * @default 120
   */
  readonly drainTimeoutSeconds?: number;
  /**
   * Take this agent out of the cluster. Deploying with `decommission: true` drains it, deletes its
   * Node, uninstalls K3s and Kilo from the host and drops it from every firewall and the mesh; then
   * delete the construct. (Deleting the construct straight away skips the cleanup: Terraform
   * forgets destroy-time provisioners together with the resource's configuration.)
   * @default false
   */
  readonly decommission?: boolean;
}

/**
 * A K3s agent installed over SSH that joins `server`.
 */
export class K3sAgent extends K3sNode {
  /** The server this agent joins. */
  public readonly server: K3sServer;

  constructor(scope: Construct, id: string, props: K3sAgentProps) {
    super(scope, id, props, NodeRole.AGENT);
    this.server = props.server;
    requireHostAndServer(this, props);
    this.server._registerAgent(this);
    this.node.addValidation({ validate: () => this.validateAgent(props) });
    const h = this.host;
    const server = props.server;
    const settings = {
      nodeName: this.nodeName,
      address: h.address,
      privateAddress: h.privateAddress,
      publicAddressOnInterface: h.publicAddressOnInterface ?? true,
      labels: this.labels,
      taints: this.taints,
      extraConfig: props.extraConfig ?? {},
      nodePortAddresses: this.nodePortAddresses,
      serverUrl: server.apiServerUrl,
    };
    const config = agentConfig({ ...settings, token: server.agentJoinToken }, CDKTF_LATE_VALUES);
    // The trigger digests the token's secret, not its CA hash: the hash comes from a data source that
    // Terraform reads late whenever the server's install changes, which would make every agent's
    // trigger unknown and replace every agent install for a change on the server alone.
    const fingerprintConfig = agentConfig({ ...settings, token: server._agentTokenSecret }, CDKTF_LATE_VALUES);
    const drainTimeout = props.drainTimeoutSeconds ?? 120;
    // Rolling restarts, coordinated on the cluster's first server (see render/rollout-script.ts).
    const root = server.clusterRoot;
    const readyTimeout = props.install?.readyTimeoutSeconds ?? 300;
    const installSettings = this._installSettings(props);
    // The real config: the CA hash in the token restarts the agent when it changes.
    const inputs = this._restartInputs(installSettings, config);
    const rollout = () => ({
      nodeName: this.nodeName,
      inputs,
      maxUnavailable: server.maxUnavailable,
      drainTimeoutSeconds: drainTimeout,
      readyTimeoutSeconds: readyTimeout,
      // By default every agent of the cluster may be ahead in the queue, each within its own bounds.
      slotTimeoutSeconds: server._slotTimeoutSeconds ?? Math.ceil(Math.max(1, server.clusterNodes.filter((n) => n.role === NodeRole.AGENT).length) / server.maxUnavailable) * (drainTimeout + readyTimeout + 120),
    });
    // The programs are shared by every agent of the stack (their text has no parameter in it);
    // only the parameters wait for the whole cluster (the slot bound counts its agents).
    const lazyScript = (parts: typeof rolloutBeforeParts) => {
      const [, program] = sharedScriptInline(this, parts({ nodeName: "", maxUnavailable: 1, drainTimeoutSeconds: 0, slotTimeoutSeconds: 0, readyTimeoutSeconds: 0, inputs: "" }, CDKTF_LATE_VALUES));
      return [Lazy.stringValue({ produce: () => terraformLiteral(parts(rollout(), CDKTF_LATE_VALUES).node) }), program];
    };
    this._wireInstall(config, installSettings,
      // The server's connection, so the destroy-time drain can run there from state alone.
      connectionDescription(server.host, "server_"),
      [
        {
          "remote-exec": {
            when: "destroy",
            inline: [terraformLiteral(renderDrainScript(this.nodeName, drainTimeout, CDKTF_LATE_VALUES))],
            connection: destroyTimeConnection(server.host, "server_"),
            // An unreachable server must not keep the agent's own cleanup from running.
            on_failure: "continue",
          },
        },
        {
          "remote-exec": {
            when: "destroy",
            inline: [terraformLiteral(renderUninstallScript("agent"))],
            connection: destroyTimeConnection(h),
          },
        },
      ],
      // Created after, and so destroyed before, the servers: the drain needs them.
      [server._lastServer().installation],
      fingerprintConfig,
      {
        connection: createTimeConnection(root.host),
        before: lazyScript(rolloutBeforeParts),
        after: lazyScript(rolloutAfterParts),
      });
  }

  /** @internal The pod network of the cluster this agent joins. */
  public get _clusterCidr(): string | undefined {
    return this.server instanceof K3sServer ? this.server.clusterCidr : undefined;
  }

  private validateAgent(props: K3sAgentProps): string[] {
    const errors: string[] = [];
    const where = `K3sAgent "${this.node.path}"`;
    if (!(props.server instanceof K3sServer)) {
      return [`${where}: server: pass the K3sServer construct this agent joins`];
    }
    // Newer than any server of the cluster (during an upgrade servers go first; agents follow).
    for (const sv of props.server.clusterServers) {
      if (sv === props.server || sv.decommissioned) continue;
      const newerThan = agentNewerThanServer(this, sv);
      if (newerThan) errors.push(`${where}: version: ${newerThan}`);
    }
    if (props.server.stack !== this.stack) {
      errors.push(`${where}: server: ${props.server.node.path} is in stack "${props.server.stack.node.id}" but this agent is in "${this.stack.node.id}"; ` +
        "create the agent in its server's stack (its join token and drain steps come from that stack's state)");
    }
    if (props.host?.address !== undefined) {
      const bad = v.checkNodeAddress(props.host.address);
      if (bad) errors.push(`${where}: host.address: ${bad}`);
    }
    const newer = agentNewerThanServer(this, props.server);
    if (newer) errors.push(`${where}: version: ${newer}`);
    const dt = props.drainTimeoutSeconds;
    if (v.isNumberToken(dt)) {
      errors.push(`${where}: drainTimeoutSeconds: ${v.synthTimeNumber("how long the drain waits", "120")}`);
    } else if (dt !== undefined && (!Number.isInteger(dt) || dt < 0 || dt > 3600)) {
      errors.push(`${where}: drainTimeoutSeconds: ${dt} must be a whole number of seconds between 0 and 3600`);
    }
    return errors;
  }
}
