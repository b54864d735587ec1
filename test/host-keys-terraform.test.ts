/**
 * Pinned SSH host keys on the real `terraform` of this machine (1.11.4) against real OpenSSH servers
 * on lab hosts, directly and through a bastion. The stacks hold only Terraform's built-in
 * `terraform_data` (no provider is needed, so `terraform init` works offline) with the connection
 * blocks the constructs emit (lib/constructs/connection.ts, the same functions K3sNode calls), and a
 * remote-exec step that proves the session reached the node. Run under the lab lock:
 *   flock /tmp/cdktf-lab.lock npx jest test/host-keys-terraform.test.ts
 */
import { spawnSync } from "child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { App, TerraformStack } from "cdktf";
import { Host } from "../lib";
import { connectionDescription, createTimeConnection, destroyTimeConnection } from "../lib/constructs/connection";
import { TerraformData } from "../lib/constructs/internal";
import { createLab, Lab } from "./harness/lab";
import { synthesizeIn, TerraformCli, terraformBinary } from "./harness/terraform-cli";

jest.setTimeout(600000);

const TIMEOUT_S = 6;
let lab: Lab;
let work: string;
let wrongKey: string;

beforeAll(async () => {
  terraformBinary(); // a clear error when terraform is missing
  lab = await createLab({
    hosts: [
      { name: "jump", address: "203.0.113.40" },
      { name: "inner", address: "203.0.113.41", sshAllowFrom: ["203.0.113.40"] },
      { name: "direct", address: "203.0.113.42" },
      { name: "dual", address: "203.0.113.43" },
    ],
  });
  work = mkdtempSync(join(tmpdir(), "host-keys-tf-"));
  spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(work, "wrong")]);
  wrongKey = readFileSync(join(work, "wrong.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
});

afterAll(async () => {
  await lab?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** `out` with Terraform's line wrapping of diagnostics undone (runs of whitespace become one space). */
interface TfRun { code: number; out: string; seconds: number }

async function terraform(tf: TerraformCli, args: string[]): Promise<TfRun> {
  const r = await tf.run([...args, "-no-color"], {}, [0, 1, 2]);
  return { code: r.code, out: `${r.stdout}\n${r.stderr}`.replace(/\s+/g, " "), seconds: r.durationMs / 1000 };
}

/** Synthesize a stack whose resources connect to `host` the way K3sNode does, and `terraform init` it. */
async function stackFor(name: string, host: Host, raw?: Record<string, unknown>): Promise<TerraformCli> {
  const outdir = join(work, name);
  const app = new App({ outdir });
  const stack = new TerraformStack(app, name);
  const reach = new TerraformData(stack, "reach", { input: connectionDescription(host) });
  reach.connection = createTimeConnection(host);
  reach.provisioners = [{ type: "remote-exec", inline: ["echo \"reached $(hostname)\""] }];
  if (raw) reach.addOverride("connection", raw);
  // As K3sNode's membership record: a destroy-time step whose connection comes from state alone.
  const leave = new TerraformData(stack, "leave", { input: connectionDescription(host) });
  leave.addOverride("provisioner", [{ "remote-exec": { when: "destroy", inline: ["echo \"left $(hostname)\""], connection: destroyTimeConnection(host) } }]);
  synthesizeIn(work, () => app.synth());
  const tf = new TerraformCli(join(outdir, "stacks", name));
  await tf.init();
  return tf;
}

const ssh = () => ({ privateKeyPath: lab.privateKeyPath, timeout: `${TIMEOUT_S}s` });

describe("host keys on real Terraform", () => {
  test("a pinned key, direct: apply reaches the node, destroy runs its cleanup", async () => {
    const d = lab.host("direct");
    const dir = await stackFor("direct-ok", { address: d.address, ssh: { ...ssh(), hostKey: d.hostKey } });
    const apply = await terraform(dir, ["apply", "-auto-approve", "-input=false"]);
    expect(apply.out).toContain("reached direct");
    expect(apply.out).toContain("Checking Host Key: true");
    expect(apply.code).toBe(0);
    const destroy = await terraform(dir, ["destroy", "-auto-approve", "-input=false"]);
    expect(destroy.out).toContain("left direct");
    expect(destroy.code).toBe(0);
  });

  test("a wrong key, direct: fails within ssh.timeout, naming the host and the mismatch", async () => {
    const d = lab.host("direct");
    const dir = await stackFor("direct-wrong", { address: d.address, ssh: { ...ssh(), hostKey: wrongKey } });
    const apply = await terraform(dir, ["apply", "-auto-approve", "-input=false"]);
    expect(apply.code).not.toBe(0);
    expect(apply.out).not.toContain("reached direct");
    expect(apply.out).toMatch(new RegExp(`timeout - last error: SSH authentication failed \\(root@${d.address.replace(/\./g, "\\.")}:22\\): ssh: handshake failed: knownhosts: key mismatch`));
    // Terraform retries until the connection timeout, not longer (plus init and plan time).
    expect(apply.seconds).toBeLessThan(TIMEOUT_S + 20);
  });

  test("Terraform 1.11.4 checks the bastion against host_key: the plain shape fails (hashicorp/terraform#38318)", async () => {
    const j = lab.host("jump");
    const i = lab.host("inner");
    const host: Host = { address: i.address, ssh: { ...ssh(), hostKey: i.hostKey, bastion: { host: j.address, hostKey: j.hostKey } } };
    // What a connection block with each key in its own attribute looks like (the library before this change).
    const plain = { ...createTimeConnectionJson(host), host_key: i.hostKey, bastion_host_key: j.hostKey };
    const dir = await stackFor("bastion-plain", host, plain);
    const apply = await terraform(dir, ["apply", "-auto-approve", "-input=false"]);
    const version = (await dir.run(["version"])).stdout;
    if (/Terraform v1\.(1[6-9]|[2-9]\d)\./.test(version)) return; // fixed upstream: nothing to show
    expect(apply.code).not.toBe(0);
    expect(apply.out).toContain("Error connecting to bastion: ssh: handshake failed: knownhosts: key mismatch");
  });

  test("both hops pinned through a bastion: apply reaches the node, destroy runs its cleanup", async () => {
    const j = lab.host("jump");
    const i = lab.host("inner");
    const dir = await stackFor("bastion-ok", { address: i.address, ssh: { ...ssh(), hostKey: i.hostKey, bastion: { host: j.address, hostKey: j.hostKey } } });
    const apply = await terraform(dir, ["apply", "-auto-approve", "-input=false"]);
    expect(apply.out).toContain("reached inner");
    expect(apply.code).toBe(0);
    const plan = await terraform(dir, ["plan", "-detailed-exitcode", "-input=false"]);
    expect(plan.code).toBe(0);
    const destroy = await terraform(dir, ["destroy", "-auto-approve", "-input=false"]);
    expect(destroy.out).toContain("left inner");
    expect(destroy.code).toBe(0);
  });

  test.each([
    ["the bastion's", "jump", (j: string, i: string, w: string) => ({ node: i, bastion: w }), "Error connecting to bastion: ssh: handshake failed: knownhosts: key mismatch"],
    ["the node's", "inner", (j: string, i: string, w: string) => ({ node: w, bastion: j }), "SSH authentication failed (root@203.0.113.41:22): ssh: handshake failed: knownhosts: key mismatch"],
  ])("a wrong key for %s hop fails within ssh.timeout with the mismatch", async (_n, _which, keys, message) => {
    const j = lab.host("jump");
    const i = lab.host("inner");
    const k = keys(j.hostKey, i.hostKey, wrongKey);
    const dir = await stackFor(`bastion-wrong-${_which}`, { address: i.address, ssh: { ...ssh(), hostKey: k.node, bastion: { host: j.address, hostKey: k.bastion } } });
    const apply = await terraform(dir, ["apply", "-auto-approve", "-input=false"]);
    expect(apply.code).not.toBe(0);
    expect(apply.out).not.toContain("reached inner");
    expect(apply.out).toContain(message);
    // Terraform's output names the hosts it was connecting to (node and bastion).
    expect(apply.out).toContain(`Host: ${i.address}`);
    expect(apply.out).toContain(`Host: ${j.address}`);
    expect(apply.seconds).toBeLessThan(TIMEOUT_S + 20);
  });
});

describe("which key to pin", () => {
  let ecdsaKey: string;
  beforeAll(async () => {
    // A server with an ECDSA key besides its ed25519 one, as stock Debian/Ubuntu servers have.
    const d = lab.host("dual");
    const file = join(d.dir, "share", "ssh_host_ecdsa_key");
    spawnSync("ssh-keygen", ["-q", "-t", "ecdsa", "-b", "256", "-N", "", "-f", file]);
    ecdsaKey = readFileSync(`${file}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    appendFileSync(join(d.dir, "share", "sshd_config"), "HostKey /run/cdktf-lab/ssh_host_ecdsa_key\n");
    await d.stopSshd();
    await d.startSshd();
  });

  test("Terraform negotiates ECDSA when the server has it: a pinned ed25519 key then fails, the ECDSA key works", async () => {
    const d = lab.host("dual");
    const ed = await (await stackFor("dual-ed25519", { address: d.address, ssh: { ...ssh(), hostKey: d.hostKey } })).run(["apply", "-auto-approve", "-input=false", "-no-color"], {}, [0, 1]);
    expect(ed.code).toBe(1);
    expect(`${ed.stdout}${ed.stderr}`.replace(/\s+/g, " ")).toContain("knownhosts: key mismatch");
    const ec = await (await stackFor("dual-ecdsa", { address: d.address, ssh: { ...ssh(), hostKey: ecdsaKey } })).run(["apply", "-auto-approve", "-input=false", "-no-color"]);
    expect(ec.stdout).toContain("reached dual");
  });
});

/** The create-time connection block as it appears in cdk.tf.json (snake_case keys). */
function createTimeConnectionJson(host: Host): Record<string, unknown> {
  const c = createTimeConnection(host) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c)) if (v !== undefined) out[k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`)] = v;
  return out;
}
