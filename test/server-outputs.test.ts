/** K3sServer's kubeconfigPath (expanded and resolved as documented) and its opt-in outputs. */
import { Fn, TerraformOutput, TerraformStack, Testing } from "cdktf";
import { K3sAgent, K3sServer } from "../lib";
import { sensitiveFile } from "@cdktf/provider-local";
import { localPath } from "../lib/constructs/local-path";
import { newStack, resourceOf, synth, validationErrors } from "./util/synth";

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
const host = (address: string) => ({ address, ssh });

describe("kubeconfigPath", () => {
  const filename = (path: string) => {
    const { stack } = newStack();
    new K3sServer(stack, "server", { host: host("203.0.113.10"), kubeconfigPath: path });
    return resourceOf(synth(stack), "local_sensitive_file", "server_kubeconfig-file").filename;
  };

  test("~ is expanded by Terraform on the deploying machine, as for privateKeyPath", () => {
    expect(filename("~/.kube/config")).toBe('${pathexpand("~/.kube/config")}');
  });

  test("a relative path is made absolute against the project directory (the synth's cwd), not the stack directory", () => {
    expect(filename("kubeconfig")).toBe(`${process.cwd()}/kubeconfig`);
    expect(filename("./out/../k3s.yaml")).toBe(`${process.cwd()}/k3s.yaml`);
  });

  test("K3sServer's filename is localPath's, the function the real-Terraform test applies", () => {
    const viaLocalPath = (p: string) => {
      const { stack } = newStack();
      new sensitiveFile.SensitiveFile(stack, "f", { filename: localPath(p), content: "x" });
      return synth(stack).resource.local_sensitive_file.f.filename;
    };
    for (const p of ["~/.kube/config", "kubeconfig", "/abs/k.yaml"]) expect(filename(p)).toBe(viaLocalPath(p));
  });

  test("an absolute path is kept", () => {
    expect(filename("/etc/k3s/admin.yaml")).toBe("/etc/k3s/admin.yaml");
  });

  test("~user is refused with a message", () => {
    const { stack } = newStack();
    new K3sServer(stack, "server", { host: host("203.0.113.10"), kubeconfigPath: "~alice/kube" });
    expect(validationErrors(stack).join("\n")).toMatch(/K3sServer "cluster\/server": kubeconfigPath: "~alice\/kube": give a file path; only "~" and "~\/…" are expanded/);
  });
});

describe("outputs", () => {
  test("off by default", () => {
    const { stack } = newStack();
    new K3sServer(stack, "server", { host: host("203.0.113.10") });
    expect(synth(stack).output).toBeUndefined();
  });

  test("API URL, every node's address (agents created after the server included), the kubeconfig as sensitive", () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, "cluster");
    const server = new K3sServer(stack, "server", { host: host("203.0.113.10"), outputs: true });
    new K3sAgent(stack, "a", { server, host: host("203.0.113.11"), nodeName: "worker-a" });
    new K3sAgent(stack, "gone", { server, host: host("203.0.113.12"), decommission: true });
    const out = synth(stack).output!;
    expect(Object.keys(out).sort()).toEqual(["server_api_server_url", "server_kubeconfig", "server_nodes"]);
    expect(out.server_api_server_url).toMatchObject({ value: "https://203.0.113.10:6443" });
    expect(out.server_api_server_url.sensitive).toBeFalsy();
    expect(out.server_nodes.value).toEqual({ server: "203.0.113.10", "worker-a": "203.0.113.11" });
    expect(out.server_kubeconfig.sensitive).toBe(true);
    expect(out.server_kubeconfig.value).toMatch(/^\$\{.+\}$/);  // the kubeconfig attribute, read by Terraform
  });
});

describe("a TerraformOutput showing a secret without sensitive: true is a synth error", () => {
  /** A cluster with the given outputs; the errors of the whole app, as App.synth() reports them. */
  function outputErrors(add: (stack: TerraformStack, server: K3sServer) => void): string[] {
    const { app, stack } = newStack();
    const server = new K3sServer(stack, "server", { host: host("203.0.113.10"), kubeconfigPath: "kc.yaml", outputs: true });
    new K3sAgent(stack, "agent", { server, host: host("203.0.113.11") });
    add(stack, server);
    return app.node.findAll().flatMap((c) => c.node.validate());
  }
  const FIX = /Add sensitive: true to that TerraformOutput \(new TerraformOutput\(scope, id, \{ value, sensitive: true \}\)\)/;

  test("server.kubeconfig: the error names the output, the value and the fix", () => {
    const errors = outputErrors((stack, server) => new TerraformOutput(stack, "kubeconfig", { value: server.kubeconfig }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^cdktf-k3s-kilo: TerraformOutput "cluster\/kubeconfig" \(output "kubeconfig"\) shows cluster\/server's kubeconfig without sensitive: true, so terraform validate and plan would fail with "Output refers to sensitive values"\. /);
    expect(errors[0]).toMatch(FIX);
  });

  test.each([
    ["clientKey", (s: K3sServer) => s.clientKey, /cluster\/server's clientKey/],
    ["clientCertificate", (s: K3sServer) => s.clientCertificate, /cluster\/server's clientCertificate/],
    ["agentJoinToken", (s: K3sServer) => s.agentJoinToken, /the agent token of cluster\/server \(agentJoinToken\)/],
    ["the kubeconfig inside a string", (s: K3sServer) => `config: ${s.kubeconfig}`, /cluster\/server's kubeconfig/],
    ["the kubeconfig through a function", (s: K3sServer) => Fn.base64encode(s.kubeconfig), /cluster\/server's kubeconfig/],
    ["the client key in a map", (s: K3sServer) => ({ key: s.clientKey, url: s.apiServerUrl }), /cluster\/server's clientKey/],
    ["the kubeconfig file's content", (s: K3sServer) => (s.node.findChild("kubeconfig-file") as sensitiveFile.SensitiveFile).content, /cluster\/server's kubeconfig file content/],
  ])("%s", (_name, value, shows) => {
    const errors = outputErrors((stack, server) => new TerraformOutput(stack, "out", { value: value(server) }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(shows);
    expect(errors[0]).toMatch(FIX);
  });

  test("a datastore endpoint (made sensitive by K3sServer): the output that shows it is refused too", () => {
    const { app, stack } = newStack();
    const server = new K3sServer(stack, "server", { host: host("203.0.113.10"), datastoreEndpoint: "postgres://db.example.com/k3s" });
    new TerraformOutput(stack, "db", { value: server.datastoreEndpoint });
    const errors = app.node.findAll().flatMap((c) => c.node.validate());
    expect(errors).toEqual([expect.stringMatching(/TerraformOutput "cluster\/db" \(output "db"\) shows a value marked sensitive \(sensitive\(\.\.\.\)\) without sensitive: true/)]);
  });

  test("no error: sensitive: true, nonsensitive(), public values, and the library's own outputs", () => {
    expect(outputErrors((stack, server) => {
      new TerraformOutput(stack, "kc", { value: server.kubeconfig, sensitive: true });
      new TerraformOutput(stack, "kc-public", { value: Fn.nonsensitive(server.kubeconfig) });
      new TerraformOutput(stack, "url", { value: server.apiServerUrl });
      new TerraformOutput(stack, "ca", { value: server.clusterCaCertificate });
      new TerraformOutput(stack, "ca-hash", { value: server.caHash });
      new TerraformOutput(stack, "cert-public", { value: server.clientCertificate, sensitive: true });
    })).toEqual([]);
  });

  test("through App.synth(): the synth fails with the error as its first line", () => {
    const { app, stack } = newStack();
    const server = new K3sServer(stack, "server", { host: host("203.0.113.10") });
    new TerraformOutput(stack, "kubeconfig", { value: server.kubeconfig });
    const err: string[] = [];
    const write = jest.spyOn(process.stderr, "write").mockImplementation((chunk: any) => { err.push(String(chunk)); return true; });
    try {
      expect(() => app.synth()).toThrow(/TerraformOutput "cluster\/kubeconfig" \(output "kubeconfig"\) shows cluster\/server's kubeconfig without sensitive: true/);
    } finally {
      write.mockRestore();
    }
    const lines = err.join("").split("\n");
    expect(lines[0]).toBe('Synth failed: 1 error in stack "cluster":');
    expect(lines[1]).toMatch(/^ERROR \[cluster\/server\]: cdktf-k3s-kilo: TerraformOutput "cluster\/kubeconfig"/);
  });
});
