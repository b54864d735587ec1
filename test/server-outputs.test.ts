/** K3sServer's kubeconfigPath (expanded and resolved as documented) and its opt-in outputs. */
import { TerraformStack, Testing } from "cdktf";
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
