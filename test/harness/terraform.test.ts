/**
 * The harness's Terraform executor on local resources only (local-exec, random_password, files):
 * plan/replace/destroy semantics, ordering, failure handling. The real-host behaviour (remote-exec,
 * file uploads, connections) is exercised by test/e2e-cluster.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync, statSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { TerraformRunner } from "./terraform";

let dir: string;
let log: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), "tf-harness-")); log = join(dir, "log"); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const lines = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []);
const say = (what: string, when?: "destroy", extra: Record<string, unknown> = {}) =>
  ({ "local-exec": { command: `echo "${what}" >> ${log}`, ...(when ? { when } : {}), ...extra } });

function stack(opts: { version: string; withB?: boolean; failB?: boolean }): object {
  const resource: Record<string, Record<string, unknown>> = {
    random_password: { tok: { length: 16, special: false } },
    terraform_data: {
      a: {
        triggers_replace: { v: opts.version },
        input: { name: "a-${random_password.tok.length}" },
        provisioner: [say("create a ${self.input.name}"), say("destroy a ${self.input.name}", "destroy")],
      },
    },
    local_sensitive_file: { f: { filename: join(dir, "out", "secret"), content: "${random_password.tok.result}", file_permission: "0600" } },
  };
  if (opts.withB) {
    resource.terraform_data.b = {
      depends_on: ["terraform_data.a"],
      triggers_replace: "${sha256(random_password.tok.result)}",
      provisioner: [
        { "local-exec": { command: opts.failB ? "echo failing >&2; exit 3" : `echo "create b" >> ${log}` } },
        say("destroy b", "destroy"),
      ],
    };
  }
  return {
    resource,
    data: { local_command: { c: { command: "sh", arguments: ["-c", "cat"], stdin: "${jsonencode({\"x\" = terraform_data.a.output.name})}", depends_on: ["terraform_data.a"] } } },
    output: { x: { value: "${jsondecode(data.local_command.c.stdout).x}" } },
  };
}

test("create, no-op re-run, replace runs the old object's destroy-time provisioner first", async () => {
  const tf = new TerraformRunner({ workDir: join(dir, "w") });
  const r1 = await tf.apply(stack({ version: "1", withB: true }));
  expect(r1.plan["data.local_command.c"]).toBe("read"); // deferred: its dependency is being created
  expect(lines()).toEqual(["create a a-16", "create b"]);
  expect(tf.state.outputs.x).toBe("a-16");
  expect(statSync(join(dir, "out", "secret")).mode & 0o777).toBe(0o600);
  expect(tf.secrets.has(readFileSync(join(dir, "out", "secret"), "utf8"))).toBe(true);

  const r2 = await tf.apply(stack({ version: "1", withB: true }));
  expect(Object.values(r2.plan).every((a) => a === "noop")).toBe(true);
  expect(lines()).toHaveLength(2);

  await tf.apply(stack({ version: "2", withB: true }));
  // b depends on a: its destroy comes before a's; the creates in dependency order.
  expect(lines().slice(2)).toEqual(["destroy a a-16", "create a a-16"]);
  tf.dispose();
});

test("a resource removed from the configuration is destroyed without its destroy-time provisioners (as Terraform does)", async () => {
  const tf = new TerraformRunner({ workDir: join(dir, "w") });
  await tf.apply(stack({ version: "1", withB: true }));
  const r = await tf.apply(stack({ version: "1", withB: false }));
  expect(r.plan["terraform_data.b"]).toBe("delete");
  expect(r.destroyed).toEqual(["terraform_data.b"]);
  expect(lines()).not.toContain("destroy b");
  tf.dispose();
});

test("a targeted destroy runs destroy-time provisioners of the target and its dependents", async () => {
  const tf = new TerraformRunner({ workDir: join(dir, "w") });
  await tf.apply(stack({ version: "1", withB: true }));
  const r = await tf.destroy(stack({ version: "1", withB: true }), ["terraform_data.a"]);
  expect(r.destroyed).toEqual(["terraform_data.b", "terraform_data.a"]);
  expect(lines().slice(2)).toEqual(["destroy b", "destroy a a-16"]);
  expect(tf.state.resources["random_password.tok"]).toBeDefined();
  tf.dispose();
});

test("a failing provisioner fails the apply, taints the resource, and the next run replaces it", async () => {
  const tf = new TerraformRunner({ workDir: join(dir, "w") });
  const r1 = await tf.tryApply(stack({ version: "1", withB: true, failB: true }));
  expect(r1.ok).toBe(false);
  expect(r1.errors[0].address).toBe("terraform_data.b");
  expect(r1.errors[0].message).toMatch(/exit status 3: failing/);
  expect(tf.state.resources["terraform_data.b"].tainted).toBe(true);
  const r2 = await tf.apply(stack({ version: "1", withB: true }));
  expect(r2.plan["terraform_data.b"]).toBe("replace");
  // A tainted object's destroy-time provisioners do not run.
  expect(lines()).toEqual(["create a a-16", "create b"]);
  tf.dispose();
});

test("unsupported configuration is refused, not skipped", async () => {
  const tf = new TerraformRunner({ workDir: join(dir, "w") });
  await expect(tf.apply({ resource: { aws_instance: { x: {} } } })).rejects.toThrow(/aws_instance is not supported/);
  await expect(tf.apply({ resource: { terraform_data: { x: { input: "${upper(\"a\")}" } } } })).rejects.toThrow(/upper\(\) is not supported/);
  await expect(tf.apply({ resource: { terraform_data: { x: { count: 2 } } } })).rejects.toThrow(/count is not supported/);
  await expect(tf.apply({ resource: { terraform_data: { x: { provisioner: [{ "remote-exec": { inline: ["true"], when: "destroy", connection: { host: "${terraform_data.y.id}" } } }] }, y: {} } } }))
    .resolves.toBeDefined();
  // ...but a destroy-time provisioner referring to anything but self fails when it runs.
  await expect(tf.destroy({ resource: { terraform_data: { x: { provisioner: [{ "remote-exec": { inline: ["true"], when: "destroy", connection: { host: "${terraform_data.y.id}" } } }] }, y: {} } } }))
    .rejects.toThrow(/may only reference self/);
  tf.dispose();
});
