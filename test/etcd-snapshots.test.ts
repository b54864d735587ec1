/**
 * etcd snapshots (K3sServer etcdSnapshots): the K3s config every embedded etcd server gets, the S3
 * credentials kept to config.yaml and digests, the bad inputs refused or warned about at synth, the
 * server token a restore needs, and the change contract (what a change re-runs and restarts).
 * Synth only: real K3s cannot be built on this machine, so no snapshot is taken or restored here.
 */
import { TerraformOutput, TerraformStack, TerraformVariable } from "cdktf";
import { EtcdSnapshotOptions, K3sAgent, K3sServer } from "../lib";
import { logicalId, newStack, parseRenderedYaml, provisioners, resourceOf, synth, validationErrors } from "./util/synth";

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };

interface Options {
  servers?: number;
  snapshots?: (stack: TerraformStack) => EtcdSnapshotOptions | undefined;
  datastore?: boolean;
  onJoining?: EtcdSnapshotOptions;
  extraConfig?: Record<string, unknown>;
}

function cluster(o: Options = {}) {
  const { app, stack } = newStack();
  const first = new K3sServer(stack, "server-0", {
    host: { address: "203.0.113.10", ssh },
    etcdSnapshots: o.snapshots?.(stack),
    datastoreEndpoint: o.datastore ? new TerraformVariable(stack, "datastore", { type: "string", sensitive: true }).stringValue : undefined,
  });
  const servers = [first];
  for (let i = 1; i < (o.servers ?? 3); i++) {
    servers.push(new K3sServer(stack, `server-${i}`, {
      join: first, host: { address: `203.0.113.${10 + i}`, ssh }, etcdSnapshots: i === 1 ? o.onJoining : undefined, extraConfig: o.extraConfig,
    }));
  }
  const agent = new K3sAgent(stack, "agent-0", { server: first, host: { address: "198.51.100.20", ssh } });
  return { app, stack, first, servers, agent };
}

/** Snapshots with S3 and keys from sensitive variables. */
const withS3 = (extra: Partial<EtcdSnapshotOptions> = {}, s3: Record<string, unknown> = {}) => (stack: TerraformStack): EtcdSnapshotOptions => ({
  scheduleCron: "0 */6 * * *",
  retention: 10,
  dir: "/srv/etcd-snapshots",
  compress: true,
  s3: {
    bucket: "k3s-backups",
    endpoint: "fsn1.your-objectstorage.com",
    folder: "prod",
    region: "eu-central",
    accessKey: new TerraformVariable(stack, "etcd_s3_access_key", { type: "string", sensitive: true }).stringValue,
    secretKey: new TerraformVariable(stack, "etcd_s3_secret_key", { type: "string", sensitive: true }).stringValue,
    ...s3,
  },
  ...extra,
});

const configOf = (out: any, prefix: string) =>
  parseRenderedYaml(provisioners(resourceOf(out, "terraform_data", `${prefix}_install`)).find((p) => p.type === "file")!.content);
const warningsOf = (stack: TerraformStack) => stack.node.findAll().flatMap((c) => c.node.metadata)
  .filter((m) => /warn/.test(m.type)).map((m) => String(m.data)).join("\n");
const errorsOf = (o: Options) => validationErrors(cluster(o).stack).join("\n");

/** Every string in the JSON with its path, e.g. ["resource.terraform_data.x.triggers_replace.values", "${…}"]. */
function strings(v: unknown, path = ""): Array<[string, string]> {
  if (typeof v === "string") return [[path, v]];
  if (Array.isArray(v)) return v.flatMap((x, i) => strings(x, `${path}[${i}]`));
  if (v && typeof v === "object") return Object.entries(v).flatMap(([k, x]) => strings(x, path ? `${path}.${k}` : k));
  return [];
}

describe("etcd snapshots in the K3s config", () => {
  test("every server of an embedded etcd cluster gets the first server's settings; agents get none", () => {
    const { stack } = cluster({ snapshots: withS3() });
    expect(validationErrors(stack)).toEqual([]);
    const out = synth(stack);
    for (const i of [0, 1, 2]) {
      const c = configOf(out, `server-${i}`);
      expect(c).toMatchObject({
        "etcd-snapshot-schedule-cron": "0 */6 * * *",
        "etcd-snapshot-retention": 10,
        "etcd-snapshot-dir": "/srv/etcd-snapshots",
        "etcd-snapshot-compress": true,
        "etcd-s3": true,
        "etcd-s3-endpoint": "fsn1.your-objectstorage.com",
        "etcd-s3-bucket": "k3s-backups",
        "etcd-s3-folder": "prod",
        "etcd-s3-region": "eu-central",
        // Written by Terraform (jsonencode: one YAML-safe scalar whatever the key holds), marked sensitive.
        "etcd-s3-access-key": "${jsonencode(sensitive(var.etcd_s3_access_key))}",
        "etcd-s3-secret-key": "${jsonencode(sensitive(var.etcd_s3_secret_key))}",
      });
      expect(c).not.toHaveProperty("etcd-s3-insecure");
      expect(c).not.toHaveProperty("etcd-s3-skip-ssl-verify");
    }
    expect(Object.keys(configOf(out, "agent-0")).filter((k) => k.startsWith("etcd"))).toEqual([]);
  });

  test("only what is given is written: etcdSnapshots {} leaves K3s's defaults", () => {
    const out = synth(cluster({ snapshots: () => ({}) }).stack);
    expect(Object.keys(configOf(out, "server-0")).filter((k) => k.startsWith("etcd"))).toEqual([]);
    const some = synth(cluster({ snapshots: () => ({ retention: 3 }) }).stack);
    expect(Object.keys(configOf(some, "server-2")).filter((k) => k.startsWith("etcd"))).toEqual(["etcd-snapshot-retention"]);
  });

  test("the S3 keys reach config.yaml and triggers only, there only as sensitive() and inside sha256(); no script, output or other attribute holds them", () => {
    const { stack } = cluster({ snapshots: withS3() });
    const out = synth(stack);
    const uses = strings(out).filter(([, s]) => /var\.etcd_s3_(access|secret)_key/.test(s));
    expect(uses.length).toBeGreaterThan(0);
    for (const [path, s] of uses) {
      const where = path.replace(/_[0-9A-F]{8}\./g, ".");
      if (/^resource\.terraform_data\.server-\d_install\.provisioner\[\d+\]\.file\.content$/.test(where)) {
        for (const m of s.matchAll(/[^\n]*var\.etcd_s3_\w+[^\n]*/g)) expect(m[0]).toMatch(/^etcd-s3-(access|secret)-key: \$\{jsonencode\(sensitive\(var\.etcd_s3_(access|secret)_key\)\)\}$/);
      } else if (/^resource\.terraform_data\.server-\d_install\.triggers_replace\.values$/.test(where)) {
        expect(s).toMatch(/^\$\{sha256\(join\("\\n", \[.*\]\)\)\}$/);
        expect(s).toContain("sensitive(var.etcd_s3_secret_key)");
      } else {
        throw new Error(`an S3 key is referenced at ${path}: ${s.slice(0, 200)}`);
      }
    }
    // Every server's config and trigger carry them; no remote-exec line (a command line) does.
    for (const i of [0, 1, 2]) {
      const install = resourceOf(out, "terraform_data", `server-${i}_install`);
      for (const p of provisioners(install).filter((x) => x.type === "remote-exec")) expect(JSON.stringify(p)).not.toMatch(/etcd_s3/);
      expect(JSON.stringify(install.triggers_replace)).toContain("var.etcd_s3_access_key");
    }
    expect(JSON.stringify(out.output ?? {})).not.toMatch(/etcd_s3/);
  });
});

describe("etcd snapshots: bad input refused at synth, naming the construct, the field and the fix", () => {
  const where = /K3sServer "cluster\/server-0": /;
  test.each<[string, Options, RegExp]>([
    ["a literal secret key", { snapshots: withS3({}, { secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" }) },
      /K3sServer "cluster\/server-0": etcdSnapshots\.s3\.secretKey: a literal value, which would be written in clear into cdk\.tf\.json and every saved plan, is refused for a credential; pass the whole value from Terraform: a TerraformVariable with sensitive: true \(new TerraformVariable\(this, "etcd_s3_secret_key", \{ type: "string", sensitive: true \}\)\.stringValue, set with TF_VAR_etcd_s3_secret_key\)/],
    ["a literal access key", { snapshots: withS3({}, { accessKey: "AKIAIOSFODNN7EXAMPLE" }) },
      /etcdSnapshots\.s3\.accessKey: a literal value, which would be written in clear/],
    ["a secret key with a literal part joined to a Terraform value", { snapshots: (stack) => withS3({}, { secretKey: `wJalrXUtnFEMI${new TerraformVariable(stack, "suffix", { type: "string", sensitive: true }).stringValue}` })(stack) },
      /etcdSnapshots\.s3\.secretKey: part of this value is literal text, which would be written in clear/],
    ["one key without the other", { snapshots: (stack) => withS3({}, { accessKey: undefined })(stack) },
      /etcdSnapshots\.s3\.accessKey: required with secretKey: give both keys, or neither to use the server's IAM instance role/],
    ["a single server (SQLite)", { servers: 1, snapshots: () => ({ retention: 3 }) },
      /K3sServer "cluster\/server-0": etcdSnapshots: a single server keeps its data in SQLite, not in etcd, so K3s takes no etcd snapshots; etcd snapshots need servers that join this one/],
    ["an external datastore", { datastore: true, snapshots: () => ({ retention: 3 }) },
      /etcdSnapshots: this cluster keeps its data in the external datastore \(datastoreEndpoint\), not in embedded etcd, so K3s takes no etcd snapshots; back the datastore up with its own tools/],
    ["set on a joining server", { onJoining: { retention: 3 } },
      /K3sServer "cluster\/server-1": etcdSnapshots: set it on the cluster's first server cluster\/server-0 only/],
    ["a cron with four fields", { snapshots: () => ({ scheduleCron: "0 */6 * *" }) },
      /etcdSnapshots\.scheduleCron: "0 \*\/6 \* \*" has 4 fields; give the five fields of a cron schedule \(minute hour day-of-month month day-of-week\), such as "0 \*\/6 \* \* \*"/],
    ["a cron with seconds (six fields)", { snapshots: () => ({ scheduleCron: "0 0 */6 * * *" }) }, /has 6 fields/],
    ["a cron minute out of range", { snapshots: () => ({ scheduleCron: "60 * * * *" }) }, /etcdSnapshots\.scheduleCron: "60 \* \* \* \*": the minute field "60" holds "60", outside 0-59/],
    ["a cron day of week out of range", { snapshots: () => ({ scheduleCron: "0 3 * * 7" }) }, /the day of week field "7" holds "7", outside 0-6 \(or SUN-SAT\)/],
    ["a cron field that is not one", { snapshots: () => ({ scheduleCron: "0 3 * * every" }) }, /the day of week field "every" holds "every", outside/],
    ["a cron range backwards", { snapshots: () => ({ scheduleCron: "0 20-4 * * *" }) }, /the hour field "20-4" has the range 20-4, which runs backwards/],
    ["a bad @every", { snapshots: () => ({ scheduleCron: "@every day" }) }, /"@every day": write @every followed by a duration, such as "@every 6h"/],
    ["retention 0", { snapshots: () => ({ retention: 0 }) }, /etcdSnapshots\.retention: 0 must be a whole number of snapshots, at least 1/],
    ["retention 2.5", { snapshots: () => ({ retention: 2.5 }) }, /etcdSnapshots\.retention: 2\.5 must be a whole number/],
    ["a relative dir", { snapshots: () => ({ dir: "backups/etcd" }) }, /etcdSnapshots\.dir: "backups\/etcd" is not an absolute path/],
    ["an endpoint with https://", { snapshots: withS3({}, { endpoint: "https://minio.example.com:9000/" }) },
      /etcdSnapshots\.s3\.endpoint: "https:\/\/minio\.example\.com:9000\/": give the host \(and port\) only, without https:\/\/, such as "minio\.example\.com:9000"/],
    ["an endpoint with a path", { snapshots: withS3({}, { endpoint: "minio.example.com/k3s" }) }, /etcdSnapshots\.s3\.endpoint: "minio\.example\.com\/k3s" is not a host name or address with an optional :port/],
    ["a bucket given as s3:// URL", { snapshots: withS3({}, { bucket: "s3://k3s-backups/prod" }) }, /etcdSnapshots\.s3\.bucket: "s3:\/\/k3s-backups\/prod": give the bucket's name only \("k3s-backups"\), and any path under it as folder/],
    ["a relative endpointCa", { snapshots: withS3({}, { endpointCa: "ca.pem" }) }, /etcdSnapshots\.s3\.endpointCa: "ca\.pem" is not an absolute path/],
    ["the secret key through extraConfig", { extraConfig: { "etcd-s3-secret-key": "x" } },
      /K3sServer "cluster\/server-1": extraConfig\["etcd-s3-secret-key"\]: this key is managed by cdktf-k3s-kilo \(use etcdSnapshots\.s3\.secretKey on the first server \(a sensitive Terraform value; kept out of plain config\)\)/],
    ["the retention through extraConfig", { extraConfig: { "etcd-snapshot-retention+": 3 } }, /extraConfig\["etcd-snapshot-retention\+"\]: this key is managed by cdktf-k3s-kilo \(use etcdSnapshots\.retention on the first server\)/],
  ])("%s", (_name, o, message) => {
    const errors = errorsOf(o);
    expect(errors).toMatch(message);
    // A refused credential is never repeated back.
    expect(errors).not.toMatch(/wJalrXUtnFEMI|AKIAIOSFODNN7EXAMPLE/);
    void where;
  });

  test.each([
    "0 */6 * * *", "30 2 * * MON-FRI", "0 0 1 jan *", "*/15 * * * *", "0 0,12 * * ?", "5 4 1-10/3 * sun", "@daily", "@every 6h", "@every 1h30m",
  ])("a schedule K3s takes is accepted: %s", (cron) => {
    expect(errorsOf({ snapshots: () => ({ scheduleCron: cron }) })).toBe("");
  });

  test("Terraform values pass unchecked: a retention, cron, bucket and endpoint from variables", () => {
    const errors = errorsOf({
      snapshots: (stack) => withS3({
        retention: new TerraformVariable(stack, "retention", { type: "number" }).numberValue,
        scheduleCron: new TerraformVariable(stack, "cron", { type: "string" }).stringValue,
      }, {
        bucket: new TerraformVariable(stack, "bucket", { type: "string" }).stringValue,
        endpoint: new TerraformVariable(stack, "endpoint", { type: "string" }).stringValue,
      })(stack),
    });
    expect(errors).toBe("");
  });
});

describe("etcd snapshots: risky S3 settings are warned about", () => {
  test.each<[string, Record<string, unknown>, RegExp]>([
    ["insecure (plain HTTP)", { insecure: true },
      /cdktf-k3s-kilo: etcdSnapshots\.s3\.insecure: true on cluster\/server-0: every server uploads its etcd snapshots over plain HTTP, .*Leave insecure off \(HTTPS\)/],
    ["skipSslVerify", { skipSslVerify: true },
      /cdktf-k3s-kilo: etcdSnapshots\.s3\.skipSslVerify: true on cluster\/server-0: the object store's certificate is not checked, .*Give endpointCa/],
  ])("%s", (_name, s3, message) => {
    const { stack } = cluster({ snapshots: withS3({}, s3) });
    expect(validationErrors(stack)).toEqual([]);
    const out = synth(stack);
    expect(warningsOf(stack)).toMatch(message);
    const key = Object.keys(s3)[0] === "insecure" ? "etcd-s3-insecure" : "etcd-s3-skip-ssl-verify";
    expect(configOf(out, "server-1")[key]).toBe(true);
  });

  test("no such warning with HTTPS and a verified certificate", () => {
    const { stack } = cluster({ snapshots: withS3({}, { endpointCa: "/etc/ssl/private-ca.pem" }) });
    const out = synth(stack);
    expect(configOf(out, "server-0")["etcd-s3-endpoint-ca"]).toBe("/etc/ssl/private-ca.pem");
    expect(warningsOf(stack)).not.toMatch(/etcdSnapshots/);
  });
});

describe("what a restore needs: the server token", () => {
  test("serverToken is the secret every server's config.yaml holds as token, marked sensitive", () => {
    const { stack, first, servers } = cluster();
    new TerraformOutput(stack, "server_token", { value: first.serverToken, sensitive: true });
    expect(validationErrors(stack)).toEqual([]);
    const out = synth(stack);
    const password = `random_password.${logicalId(out, "random_password", "server-0_server-token")}.result`;
    expect(out.output!.server_token.value).toBe(`\${sensitive(${password})}`);
    expect(configOf(out, "server-0").token).toBe(`\${jsonencode(${password})}`);
    // A joining server gives the same token (its config holds it CA-pinned: K10<hash>::server:<secret>).
    expect(servers[2].serverToken).toBe(first.serverToken);
  });

  test("an output of serverToken without sensitive: true is refused at synth", () => {
    const { stack, first } = cluster();
    new TerraformOutput(stack, "server_token", { value: first.serverToken });
    expect(validationErrors(stack).join("\n")).toMatch(/TerraformOutput "cluster\/server_token" \(output "server_token"\) shows the server token of cluster\/server-0 without sensitive: true.*Add sensitive: true/);
  });
});

describe("the change contract of etcd snapshot settings", () => {
  const installTriggers = (out: any) => Object.fromEntries(Object.entries(out.resource.terraform_data)
    .filter(([k]) => k.includes("_install_")).map(([k, v]: [string, any]) => [k.replace(/_[0-9A-F]+$/, ""), JSON.stringify(v.triggers_replace)]));
  const changed = (a: Options, b: Options) => {
    const [x, y] = [installTriggers(synth(cluster(a).stack)), installTriggers(synth(cluster(b).stack))];
    return Object.keys(x).filter((k) => x[k] !== y[k]).sort();
  };
  const everyServer = ["server-0_install", "server-1_install", "server-2_install"];

  test.each<[string, Options, Options]>([
    ["turning snapshots settings on", {}, { snapshots: () => ({ retention: 10 }) }],
    ["a new schedule", { snapshots: () => ({ scheduleCron: "0 */6 * * *" }) }, { snapshots: () => ({ scheduleCron: "0 */4 * * *" }) }],
    ["a new retention", { snapshots: () => ({ retention: 5 }) }, { snapshots: () => ({ retention: 6 }) }],
    ["a new directory", { snapshots: () => ({ dir: "/srv/a" }) }, { snapshots: () => ({ dir: "/srv/b" }) }],
    ["adding S3", { snapshots: () => ({ retention: 5 }) }, { snapshots: withS3({ retention: 5, scheduleCron: undefined, dir: undefined, compress: undefined }) }],
    ["another bucket", { snapshots: withS3() }, { snapshots: withS3({}, { bucket: "other-bucket" }) }],
  ])("%s re-runs every server's install (K3s restarts there, one server at a time) and no agent's", (_name, a, b) => {
    expect(changed(a, b)).toEqual(everyServer);
  });

  test("servers restart one at a time: each server's install waits for the one before", () => {
    const out = synth(cluster({ snapshots: withS3() }).stack);
    for (const i of [1, 2]) {
      const deps = resourceOf(out, "terraform_data", `server-${i}_install`).depends_on as string[];
      expect(deps).toContain(`terraform_data.${logicalId(out, "terraform_data", `server-${i - 1}_install`)}`);
    }
  });

  test("new S3 keys (other Terraform values) change the triggers through their sha256 only", () => {
    const keysFrom = (name: string) => (stack: TerraformStack) => withS3({}, {
      accessKey: new TerraformVariable(stack, `${name}_id`, { type: "string", sensitive: true }).stringValue,
      secretKey: new TerraformVariable(stack, `${name}_secret`, { type: "string", sensitive: true }).stringValue,
    })(stack);
    const trigger = (name: string) => resourceOf(synth(cluster({ snapshots: keysFrom(name) }).stack), "terraform_data", "server-0_install").triggers_replace;
    const [a, b] = [trigger("old"), trigger("new")];
    // The text digest (the config with each Terraform value as a marker) stays; the values' digest changes.
    expect(b.text).toBe(a.text);
    expect(b.values).not.toBe(a.values);
    expect(b.values).toMatch(/^\$\{sha256\(join\("\\n", \[.*sensitive\(var\.new_secret\)\]\)\)\}$/);
  });
});
