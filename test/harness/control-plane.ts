/**
 * A real Kubernetes control plane for tests, on loopback: kine (the etcd API on SQLite, as in K3s),
 * kube-apiserver, kube-controller-manager and kube-scheduler 1.33.4, and kwok, which plays the
 * kubelet of the Nodes it is given (no kubelet or container runtime can run here). Everything is
 * built from its Go module by tools/build.sh; nothing here re-implements Kubernetes.
 *
 * What is real: the API server (authentication by client certificate, RBAC, admission, OpenAPI
 * validation, server-side apply, CRDs), the controllers (node IPAM allocating pod CIDRs, the
 * DaemonSet controller creating pods), the scheduler binding them. What is simulated, by kwok:
 * Nodes' kubelets (heartbeats, Ready) and pods' containers (a pod is marked Running; nothing runs).
 *
 * Ports are picked free on 127.0.0.1 (or on `bindAddress`, e.g. a lab's bridge address, so a lab host
 * can reach the API); the controller manager and the scheduler serve no port of
 * their own (`--secure-port=0`). Every process runs in its own process group and is killed by id in
 * stop(); its log stays in the directory until then (printed when a wait fails).
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "fs";
import { request } from "https";
import { createServer } from "net";
import { tmpdir } from "os";
import { join } from "path";
import { builtTools } from "./terraform-env";

export interface ControlPlaneOptions {
  /**
   * The address kube-apiserver binds and advertises, and every client of it here connects to.
   * @default "127.0.0.1"
   */
  readonly bindAddress?: string;
  /**
   * More IP addresses the API server's serving certificate is valid for (beyond 127.0.0.1 and
   * bindAddress): the address a client is forwarded from, e.g. a lab host's.
   * @default - none
   */
  readonly extraIpSans?: string[];
}

export interface ControlPlane {
  readonly dir: string;
  /** https://<bindAddress>:<port> */
  readonly server: string;
  readonly port: number;
  /** An admin kubeconfig (system:masters), certificates inline. */
  readonly kubeconfig: string;
  readonly caPem: string;
  /** The admin (system:masters) client certificate and key, PEM. */
  readonly adminCertPem: string;
  readonly adminKeyPem: string;
  /** GET/POST/… with the admin client certificate; resolves to the parsed JSON body and status. */
  api(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: any }>;
  /** Poll `check` every 250 ms until it returns a truthy value, at most `seconds`; then throw with `what`. */
  waitFor<T>(what: string, seconds: number, check: () => Promise<T | undefined | false>): Promise<T>;
  /** Nodes kwok plays, Ready and with pod CIDRs from the controller manager. */
  addNodes(names: string[]): Promise<void>;
  stop(): Promise<void>;
}

const NODE_CIDR = "10.42.0.0/16";
const SERVICE_CIDR = "10.43.0.0/16";

export function tool(name: string): string {
  const t = builtTools().find((x) => x.name === name);
  if (!t) throw new Error(`tools/build.sh built no ${name}`);
  return t.binary;
}

async function freePort(address: string): Promise<number> {
  return new Promise((resolveP, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, address, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolveP(port));
    });
  });
}

/** A CA, serving and client certificates, and the service-account key pair, made with openssl. */
function makePki(pki: string, address: string, apiPort: number, extraIpSans: string[]): void {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: pki, stdio: ["ignore", "ignore", "pipe"] });
  const ca = (name: string, cn: string) => ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${cn}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature");
  const sign = (caName: string, name: string, subj: string, ext: string) => {
    ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj);
    writeFileSync(join(pki, `${name}.ext`), ext);
    ssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${caName}.crt`, "-CAkey", `${caName}.key`, "-CAcreateserial",
      "-days", "2", "-sha256", "-extfile", `${name}.ext`, "-out", `${name}.crt`);
  };
  const client = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";
  ca("ca", "test control plane CA");
  ca("front-proxy-ca", "test front-proxy CA");
  sign("ca", "apiserver", "/CN=kube-apiserver", "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n" +
    `extendedKeyUsage=serverAuth\nsubjectAltName=${[...new Set(["127.0.0.1", address, ...extraIpSans])].map((a) => `IP:${a}`).join(",")},` +
    "IP:10.43.0.1,DNS:localhost,DNS:kubernetes.default.svc\n");
  sign("ca", "admin", "/O=system:masters/CN=test-admin", client);
  sign("ca", "controller-manager", "/CN=system:kube-controller-manager", client);
  sign("ca", "scheduler", "/CN=system:kube-scheduler", client);
  sign("front-proxy-ca", "front-proxy-client", "/CN=front-proxy-client", client);
  ssl("genrsa", "-out", "sa.key", "2048");
  ssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub");
  const b64 = (f: string) => readFileSync(join(pki, f)).toString("base64");
  for (const user of ["admin", "controller-manager", "scheduler"]) {
    writeFileSync(join(pki, `${user}.kubeconfig`), [
      "apiVersion: v1", "kind: Config",
      "clusters:", "- name: test", "  cluster:", `    server: https://${address}:${apiPort}`, `    certificate-authority-data: ${b64("ca.crt")}`,
      "users:", `- name: ${user}`, "  user:", `    client-certificate-data: ${b64(`${user}.crt`)}`, `    client-key-data: ${b64(`${user}.key`)}`,
      "contexts:", "- name: test", `  context: {cluster: test, user: ${user}}`, "current-context: test", "",
    ].join("\n"), { mode: 0o600 });
  }
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const address = options.bindAddress ?? "127.0.0.1";
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(address)) throw new Error(`control plane: bindAddress ${address}: give an IPv4 address of this machine`);
  const dir = mkdtempSync(join(tmpdir(), "control-plane-"));
  const pki = join(dir, "pki");
  mkdirSync(pki, { mode: 0o700 });
  const [kinePort, apiPort] = [await freePort("127.0.0.1"), await freePort(address)];
  makePki(pki, address, apiPort, options.extraIpSans ?? []);
  const children: ChildProcess[] = [];
  const logs: string[] = [];
  const start = (name: string, args: string[]) => {
    const log = join(dir, `${name}.log`);
    logs.push(log);
    const fd = openSync(log, "a");
    const child = spawn(tool(name), args, { cwd: dir, stdio: ["ignore", fd, fd], detached: true });
    closeSync(fd);
    children.push(child);
  };
  const p = (f: string) => join(pki, f);
  const server = `https://${address}:${apiPort}`;
  const ca = readFileSync(p("ca.crt"));
  const cert = readFileSync(p("admin.crt"));
  const key = readFileSync(p("admin.key"));

  const api: ControlPlane["api"] = (method, path, body, contentType = "application/json") => new Promise((resolveP, reject) => {
    const data = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    const req = request(`${server}${path}`, {
      method, ca, cert, key, timeout: 10_000,
      headers: data ? { "content-type": contentType, "content-length": String(data.length) } : {},
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: any = text;
        try { parsed = JSON.parse(text); } catch { /* plain text, e.g. /readyz */ }
        resolveP({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on("error", reject);
    req.end(data);
  });

  const tail = () => logs.map((l) => `--- ${l} (last 1500 chars)\n${readFileSync(l, "utf8").slice(-1500)}`).join("\n");
  const waitFor: ControlPlane["waitFor"] = async (what, seconds, check) => {
    const until = Date.now() + seconds * 1000;
    let last: unknown;
    while (Date.now() < until) {
      try {
        const v = await check();
        if (v) return v as any;
      } catch (e) { last = e; }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`control plane: ${what} not within ${seconds} s${last ? ` (last error: ${last})` : ""}\n${tail()}`);
  };

  const stop = async () => {
    for (const c of children) { try { process.kill(-c.pid!, "SIGTERM"); } catch { /* gone */ } }
    await new Promise((r) => setTimeout(r, 1000));
    for (const c of children) { try { process.kill(-c.pid!, "SIGKILL"); } catch { /* gone */ } }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    start("kine", ["--listen-address", `127.0.0.1:${kinePort}`, "--endpoint", `sqlite://${join(dir, "state.db")}?_journal_mode=WAL&_busy_timeout=30000`, "--metrics-bind-address", "0"]);
    start("kube-apiserver", [
      "--bind-address=" + address, `--secure-port=${apiPort}`, "--advertise-address=" + address,
      // Endpoints for the "kubernetes" Service refuse a loopback address; nothing here needs them.
      "--endpoint-reconciler-type=none",
      `--etcd-servers=http://127.0.0.1:${kinePort}`, `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction", "--allow-privileged=true",
      `--client-ca-file=${p("ca.crt")}`, `--tls-cert-file=${p("apiserver.crt")}`, `--tls-private-key-file=${p("apiserver.key")}`,
      "--service-account-issuer=https://kubernetes.default.svc", `--service-account-key-file=${p("sa.pub")}`,
      `--service-account-signing-key-file=${p("sa.key")}`,
      `--requestheader-client-ca-file=${p("front-proxy-ca.crt")}`, "--requestheader-allowed-names=front-proxy-client",
      "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
      "--requestheader-extra-headers-prefix=X-Remote-Extra-",
      `--proxy-client-cert-file=${p("front-proxy-client.crt")}`, `--proxy-client-key-file=${p("front-proxy-client.key")}`,
      "--profiling=false", "--v=1",
    ]);
    await waitFor("kube-apiserver /readyz", 120, async () => (await api("GET", "/readyz")).status === 200);
    const kc = (user: string) => [`--kubeconfig=${p(`${user}.kubeconfig`)}`, `--authentication-kubeconfig=${p(`${user}.kubeconfig`)}`,
      `--authorization-kubeconfig=${p(`${user}.kubeconfig`)}`];
    start("kube-controller-manager", [...kc("controller-manager"), "--secure-port=0", "--leader-elect=false",
      "--allocate-node-cidrs=true", `--cluster-cidr=${NODE_CIDR}`, "--node-cidr-mask-size=24", `--service-cluster-ip-range=${SERVICE_CIDR}`,
      `--service-account-private-key-file=${p("sa.key")}`, `--root-ca-file=${p("ca.crt")}`, "--use-service-account-credentials=true",
      "--profiling=false", "--v=1"]);
    start("kube-scheduler", [...kc("scheduler"), "--secure-port=0", "--leader-elect=false", "--profiling=false", "--v=1"]);
    // kwok plays the kubelet of Nodes carrying its annotation, and marks their pods Running.
    start("kwok", [`--kubeconfig=${p("admin.kubeconfig")}`, "--manage-all-nodes=false",
      "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--node-lease-duration-seconds=40"]);
  } catch (e) {
    await stop();
    throw e;
  }

  const addNodes = async (names: string[]) => {
    for (const name of names) {
      const r = await api("POST", "/api/v1/nodes", {
        apiVersion: "v1", kind: "Node",
        metadata: { name, annotations: { "kwok.x-k8s.io/node": "fake" }, labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" } },
        status: { allocatable: { cpu: "4", memory: "8Gi", pods: "110" }, capacity: { cpu: "4", memory: "8Gi", pods: "110" } },
      });
      if (r.status !== 201) throw new Error(`creating Node ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    await waitFor(`Nodes ${names.join(", ")} Ready with pod CIDRs`, 120, async () => {
      const items = (await api("GET", "/api/v1/nodes")).body.items as any[];
      return names.every((n) => {
        const node = items.find((i) => i.metadata.name === n);
        return node?.spec?.podCIDR && node.status?.conditions?.some((c: any) => c.type === "Ready" && c.status === "True");
      });
    });
  };

  return {
    dir, server, port: apiPort, kubeconfig: p("admin.kubeconfig"), caPem: ca.toString("utf8"),
    adminCertPem: cert.toString("utf8"), adminKeyPem: key.toString("utf8"), api, waitFor, addNodes, stop,
  };
}
