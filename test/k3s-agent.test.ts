
import { TerraformStack } from "cdktf";
import { K3sAgent, K3sServer } from "../lib";
import { logicalId, newStack, parseRenderedYaml, provisioners, resourceOf, synth, validationErrors } from "./util/synth";

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };

function cluster(agentCount = 2, agentProps: Record<string, unknown> = {}) {
  const { app, stack } = newStack();
  const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
  const agents = Array.from({ length: agentCount }, (_, i) =>
    new K3sAgent(stack, `agent-${i}`, { server, host: { address: `203.0.113.${11 + i}`, ssh }, ...agentProps }));
  return { app, stack, server, agents, out: synth(stack) };
}

describe("K3sAgent", () => {
  test("joins with the server URL and the CA-pinned agent token only", () => {
    const { out } = cluster(1);
    const install = resourceOf(out, "terraform_data", "agent-0_install");
    const file = provisioners(install).find((p) => p.type === "file")!;
    const config = parseRenderedYaml(file.content);
    expect(config.server).toBe("https://203.0.113.10:6443");
    expect(config.token).toMatch(/^\$\{jsonencode\(sensitive\(join\("", \["K10", jsondecode\(data\.local_command\.server_credentials_\w+\.stdout\)\.ca_hash, "::node:", random_password\.server_agent-token_\w+\.result\]\)\)\)\}$/);
    expect(config["node-name"]).toBe("agent-0");
    // Never the server token, never an admin kubeconfig.
    const everything = JSON.stringify([install, resourceOf(out, "terraform_data", "agent-0_membership")]);
    expect(everything).not.toMatch(/server-token/);
    expect(everything).not.toMatch(/k3s\.yaml|stdout\)\.kubeconfig|client_key|client_certificate/);
  });

  test("installs after its server, in parallel with the other agents", () => {
    const { out } = cluster(3);
    const serverInstall = `terraform_data.${logicalId(out, "terraform_data", "server_install")}`;
    for (let i = 0; i < 3; i++) {
      const membership = resourceOf(out, "terraform_data", `agent-${i}_membership`);
      expect(membership.depends_on).toEqual([serverInstall]);
      const install = resourceOf(out, "terraform_data", `agent-${i}_install`);
      const refs = JSON.stringify(install).match(/terraform_data\.[\w-]+/g) ?? [];
      expect(refs.filter((r) => r.includes("agent-") && !r.includes(`agent-${i}_`))).toEqual([]);
      // The token reference makes the install wait for the server's kubeconfig fetch.
      expect(JSON.stringify(install)).toMatch(/data\.local_command\.server_credentials_/);
    }
  });

  test("each node's settings, and the same install options as servers", () => {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
    new K3sAgent(stack, "pi", {
      server,
      host: { address: "198.51.100.20", privateAddress: "192.168.1.20", publicAddressOnInterface: false, behindNat: true, ssh },
      nodeName: "home-pi",
      labels: { site: "home" },
      taints: ["edge=true:NoSchedule"],
      version: "v1.32.8+k3s1",
      install: { scriptUrl: "https://mirror.example.com/k3s/install.sh", installWireguardTools: false },
    });
    const out = synth(stack);
    const install = resourceOf(out, "terraform_data", "pi_install");
    const ps = provisioners(install);
    expect(parseRenderedYaml(ps.find((p) => p.type === "file")!.content)).toMatchObject({
      "node-name": "home-pi", "node-ip": "192.168.1.20", "node-external-ip": "198.51.100.20",
      "node-label": ["site=home"], "node-taint": ["edge=true:NoSchedule"],
    });
    const script = ps.find((p) => p.type === "remote-exec" && /install or reconfigure the K3s/.test(p.inline[0]))!.inline[0];
    expect(script).toContain("K3S_VERSION='v1.32.8+k3s1'");
    expect(script).toContain("INSTALLER_URL='https://mirror.example.com/k3s/install.sh'");
    expect(script).not.toContain("wireguard-tools");
    expect(script).toContain("INSTALL_K3S_EXEC=\"$ROLE\"");
    expect(script).toContain("ROLE=agent");
  });

  test("destroy drains and deletes the node on the server, then uninstalls on the host", () => {
    const { out } = cluster(1, { drainTimeoutSeconds: 45, host: { address: "203.0.113.11", ssh: { user: "ubuntu", agent: true, bastion: { host: "203.0.113.10", user: "jump" } } } });
    const membership = resourceOf(out, "terraform_data", "agent-0_membership");
    const [drain, uninstall] = provisioners(membership);
    expect(drain.when).toBe("destroy");
    expect(drain.on_failure).toBe("continue");
    expect(drain.connection.host).toBe("${self.input.server_host}");
    expect(drain.inline[0]).toContain("kubectl drain \"$NODE\" --ignore-daemonsets --delete-emptydir-data --force --timeout=45s");
    expect(drain.inline[0]).toContain("kubectl delete node \"$NODE\" --ignore-not-found");
    expect(drain.inline[0]).toContain("NODE='agent-0'");
    expect(uninstall.when).toBe("destroy");
    expect(uninstall.on_failure).toBeUndefined();
    expect(uninstall.inline[0]).toContain("k3s-agent-uninstall.sh");
    expect(uninstall.inline[0]).toContain("for link in kilo0 kube-bridge; do");
    expect(uninstall.inline[0]).not.toMatch(/^[^#\n]*tunl0/m); // the kernel's fallback device (and maybe the operator's) is left alone
    for (const leftover of ["KILO-", "/var/lib/kilo", "/etc/cni/net.d/10-kilo.conflist"]) {
      expect(uninstall.inline[0]).toContain(leftover);
    }
    // Agent connection with no key path: the SSH agent, and the bastion from state.
    expect(uninstall.connection).toMatchObject({ agent: true, user: "${self.input.user}", bastion_host: "${self.input.bastion_host}", bastion_user: "${self.input.bastion_user}" });
    expect(membership.input).toMatchObject({ user: "ubuntu", bastion_host: "203.0.113.10", bastion_user: "jump", server_host: "203.0.113.10" });
  });

  describe("the change contract, read from triggers", () => {
    const installTriggers = (out: any) => Object.fromEntries(Object.entries(out.resource.terraform_data)
      .filter(([k]) => k.includes("_install_")).map(([k, v]: [string, any]) => [k, JSON.stringify(v.triggers_replace)]));

    test("adding an agent re-runs no other install", () => {
      const before = installTriggers(cluster(2).out);
      const after = installTriggers(cluster(3).out);
      for (const [k, v] of Object.entries(before)) expect(after[k]).toBe(v);
      expect(Object.keys(after)).toHaveLength(3 + 1);
    });

    test("changing one agent's version re-runs only that install", () => {
      const build = (version?: string) => {
        const { stack } = newStack();
        const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
        new K3sAgent(stack, "a", { server, host: { address: "203.0.113.11", ssh }, version });
        new K3sAgent(stack, "b", { server, host: { address: "203.0.113.12", ssh } });
        return installTriggers(synth(stack));
      };
      const before = build();
      const after = build("v1.34.1+k3s1");
      const changed = Object.keys(before).filter((k) => before[k] !== after[k]);
      expect(changed).toEqual([expect.stringMatching(/^a_install_/)]);
    });

    test("a change on the server alone re-runs no agent install", () => {
      const build = (secretsEncryption: boolean) => {
        const { stack } = newStack();
        const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh }, secretsEncryption });
        new K3sAgent(stack, "a", { server, host: { address: "203.0.113.11", ssh } });
        return synth(stack);
      };
      const [before, after] = [build(true), build(false)];
      const agentTrigger = (out: any) => resourceOf(out, "terraform_data", "a_install").triggers_replace;
      // Not derived from the kubeconfig fetch, which Terraform reads late when the server changes.
      expect(JSON.stringify(agentTrigger(before))).not.toMatch(/local_command/);
      expect(agentTrigger(after)).toEqual(agentTrigger(before));
      expect(resourceOf(after, "terraform_data", "server_install").triggers_replace).not.toEqual(resourceOf(before, "terraform_data", "server_install").triggers_replace);
    });

    test("changing SSH settings updates state in place and re-runs nothing", () => {
      const build = (user: string) => {
        const { stack } = newStack();
        const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
        new K3sAgent(stack, "a", { server, host: { address: "203.0.113.11", ssh: { ...ssh, user } } });
        const out = synth(stack);
        return { triggers: installTriggers(out), membership: resourceOf(out, "terraform_data", "a_membership") };
      };
      const before = build("root");
      const after = build("admin");
      expect(after.triggers).toEqual(before.triggers);
      expect(after.membership.triggers_replace).toEqual(before.membership.triggers_replace);
      expect(after.membership.input.user).toBe("admin");
    });
  });

  test("an agent in another stack than its server is refused with a fix", () => {
    const { app, stack } = newStack();
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
    const other = new TerraformStack(app, "edge");
    new K3sAgent(other, "a", { server, host: { address: "203.0.113.11", ssh } });
    expect(validationErrors(other).join("\n")).toMatch(/K3sAgent "edge\/a": server: cluster\/server is in stack "cluster" but this agent is in "edge"; create the agent in its server's stack/);
  });
});

describe("decommissioning an agent", () => {
  function build(decommission: boolean) {
    const { stack } = newStack();
    const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
    const keep = new K3sAgent(stack, "keep", { server, host: { address: "203.0.113.11", ssh } });
    const gone = new K3sAgent(stack, "gone", { server, host: { address: "203.0.113.12", ssh }, decommission });
    const { PeerFirewall } = require("../lib");
    new PeerFirewall(stack, "fw", { nodes: [server, keep, gone], adminCidrs: ["192.0.2.0/28"] });
    return synth(stack);
  }

  test("keeps the configuration with count = 0, so Terraform runs its destroy-time cleanup", () => {
    const out = build(true);
    const membership = resourceOf(out, "terraform_data", "gone_membership");
    expect(membership.count).toBe(0);
    expect(resourceOf(out, "terraform_data", "gone_install").count).toBe(0);
    expect(provisioners(membership).map((p) => p.when)).toEqual(["destroy", "destroy"]);
    expect(resourceOf(out, "terraform_data", "keep_membership").count).toBeUndefined();
  });

  test("drops it from every firewall and re-runs no other install", () => {
    const [before, after] = [build(false), build(true)];
    const firewalls = (out: any) => Object.keys(out.resource.terraform_data).filter((k) => k.startsWith("fw_"));
    expect(firewalls(before).some((k) => k.includes("gone"))).toBe(true);
    expect(firewalls(after).some((k) => k.includes("gone"))).toBe(false);
    const keepFw = (out: any) => Object.entries<any>(out.resource.terraform_data).find(([k]) => k.startsWith("fw_keep"))![1];
    // The peer addresses live in the converge program's shared local; each firewall's trigger digests them.
    expect(JSON.stringify((before as any).locals)).toContain("203.0.113.12");
    expect(JSON.stringify((after as any).locals)).not.toContain("203.0.113.12");
    expect(keepFw(after).triggers_replace).not.toEqual(keepFw(before).triggers_replace);
    for (const id of ["server_install", "keep_install"]) {
      expect(resourceOf(after, "terraform_data", id).triggers_replace).toEqual(resourceOf(before, "terraform_data", id).triggers_replace);
    }
  });
});
