/**
 * Synth-time checks of literal values. Each returns a message describing what is wrong and how
 * to fix it, or undefined when the value is fine. A Terraform token alone is never checked: its value
 * is only known at apply time. Where a literal part can hold a secret or a scheme, a string that
 * mixes literal text with tokens is checked on its literal parts (literalShape).
 */
import { Token, Tokenization } from "cdktf";
import * as ipaddr from "ipaddr.js";

export function isToken(value: unknown): boolean {
  return typeof value === "string" ? Token.isUnresolved(value) : value !== undefined && Token.isUnresolved(value);
}

const HOSTNAME = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/;

/** An IP address (v4 or v6) or a DNS name. */
export function checkAddress(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (ipaddr.isValid(value)) {
    // ipaddr also accepts shorthand such as "10.1" or "0x7f.1"; insist on the canonical forms.
    if (ipaddr.IPv4.isValidFourPartDecimal(value) || (ipaddr.IPv6.isValid(value) && value.includes(":"))) return undefined;
    return `"${value}" is not a valid IP address; write IPv4 as four decimal parts such as 203.0.113.10`;
  }
  if (/^[0-9.]+$/.test(value)) return `"${value}" is not a valid IPv4 address`;
  const withPort = addressWithPort(value);
  if (withPort) return withPort;
  if (value.includes(":")) return `"${value}" is not a valid IPv6 address`;
  if (!HOSTNAME.test(value)) return `"${value}" is neither an IP address nor a DNS name`;
  return undefined;
}

/** An IP address only (no DNS name). */
export function checkIp(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (ipaddr.IPv4.isValidFourPartDecimal(value) || (value.includes(":") && ipaddr.IPv6.isValid(value))) return undefined;
  return `"${value}" is not an IP address`;
}

/** A CIDR block such as 10.42.0.0/16, with no host bits set. A bare IP is not accepted. */
export function checkCidr(value: string): string | undefined {
  if (isToken(value)) return undefined;
  const slash = value.indexOf("/");
  if (slash < 0) return `"${value}" is not a CIDR block; add the prefix length (for one address: ${value}/${value.includes(":") ? 128 : 32})`;
  const ip = value.slice(0, slash);
  if (checkIp(ip)) return `"${value}" is not a CIDR block: "${ip}" is not an IP address`;
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    parsed = ipaddr.parseCIDR(value);
  } catch {
    return `"${value}" is not a CIDR block: the prefix length must be 0-${value.includes(":") ? 128 : 32}`;
  }
  const [addr, bits] = parsed;
  const network = addr.kind() === "ipv4"
    ? ipaddr.IPv4.networkAddressFromCIDR(value).toString()
    : ipaddr.IPv6.networkAddressFromCIDR(value).toString();
  if (network !== addr.toString()) return `"${value}" has host bits set; did you mean ${network}/${bits}?`;
  return undefined;
}

/** A TCP/UDP port number. */
export function checkPort(value: number): string | undefined {
  if (isToken(value)) return undefined;
  if (!Number.isInteger(value) || value < 1 || value > 65535) return `${value} is not a port number (1-65535)`;
  return undefined;
}

/** A K3s release such as v1.33.4+k3s1. */
export function checkK3sVersion(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (!/^v1\.\d+\.\d+\+k3s\d+$/.test(value)) return `"${value}" is not a K3s release; use the form v1.N.P+k3sM, for example v1.33.4+k3s1`;
  return undefined;
}

/** A Kubernetes node name (DNS-1123 subdomain). */
export function checkNodeName(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (value.length > 253 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(value)) {
    return `"${value}" is not a valid node name: use lower-case letters, digits, "-" and ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A label or annotation key: optional DNS prefix, "/", name of at most 63 characters. */
export function checkLabelKey(key: string): string | undefined {
  if (isToken(key)) return undefined;
  const parts = key.split("/");
  if (parts.length > 2) return `label key "${key}" has more than one "/"`;
  const name = parts[parts.length - 1];
  if (parts.length === 2 && (parts[0].length > 253 || !DNS_SUBDOMAIN.test(parts[0]))) {
    return `label key "${key}" has an invalid prefix "${parts[0]}": it must be a lower-case DNS name`;
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return `label key "${key}" is invalid: the name part must be 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** A label value: empty, or at most 63 characters of letters, digits, "-", "_", ".". */
export function checkLabelValue(key: string, value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (value === "") return undefined;
  if (value.length > 63 || !LABEL_NAME.test(value)) {
    return `label "${key}" has an invalid value "${value}": use at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** A taint in K3s's `key[=value]:Effect` form. */
export function checkTaint(value: string): string | undefined {
  if (isToken(value)) return undefined;
  const m = /^([^=:]+)(=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/.exec(value);
  if (!m) return `taint "${value}" is invalid: use key=value:Effect with Effect NoSchedule, PreferNoSchedule or NoExecute`;
  return checkLabelKey(m[1]) ?? (m[3] !== undefined ? checkLabelValue(m[1], m[3]) : undefined);
}

/** A Terraform duration such as "30s", "2m" or "1h". */
export function checkDuration(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (!/^(\d+h)?(\d+m)?(\d+s)?$/.test(value) || value === "") return `"${value}" is not a duration; use forms such as 30s, 2m or 1h`;
  return undefined;
}

/**
 * A URL the install script is downloaded from. A URL that mixes literal text with Terraform values
 * is checked on its literal parts (a token alone passes): no plain http, and no credentials.
 */
export function checkUrl(value: string): string | undefined {
  const shape = literalShape(value);
  const mixed = shape.includes(UNKNOWN);
  if (!mixed && !/^(https?|file):\/\/\S+$/.test(value)) return `"${maskUserinfo(shape)}" is not an http(s):// or file:// URL`;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(shape)?.[1].toLowerCase();
  if (scheme === "http") return `"${maskUserinfo(shape)}" is plain http: the script runs as root, so fetch it over https:// (or file:// for a copy on the host)`;
  if (mixed && scheme !== undefined && scheme !== "https" && scheme !== "file") return `"${maskUserinfo(shape)}" is not an https:// or file:// URL`;
  const userinfo = urlUserinfo(shape);
  if (userinfo) {
    return `"${maskUserinfo(shape)}" carries credentials (${userinfo.password !== undefined ? "user:password" : "a user name or token"} before the @): ` +
      "they would be written into cdk.tf.json and every saved plan, into the script Terraform uploads to every host (world-readable while it runs) " +
      "and into a file on each host. Serve the script from a URL that needs no credentials " +
      "(a mirror inside your network, or a copy on each host as file:///path) and pin its content with install.scriptSha256" +
      (userinfo.password === undefined ? ` (an @ that belongs to the path is written %40)` : "");
  }
  return undefined;
}

/** An absolute path on a host (no quotes or newlines, which would break the generated scripts). */
export function checkAbsolutePath(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (!value.startsWith("/") || /[\n'"\\]/.test(value)) return `"${value}" is not an absolute path without quotes or newlines`;
  return undefined;
}

/** An OpenSSH public key line (`type base64 [comment]`). */
export function checkHostKey(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (!/^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*( .*)?$/.test(value.trim())) {
    return `host key "${value.slice(0, 40)}…" is not an OpenSSH public key line such as "ssh-ed25519 AAAA…"`;
  }
  return undefined;
}

/**
 * An address written with a port or as a URL ("203.0.113.10:2222", "[2001:db8::1]:22",
 * "ssh://host"): the port belongs in ssh.port, the address stands alone.
 */
function addressWithPort(value: string): string | undefined {
  const url = /^[a-z][a-z0-9+.-]*:\/\/([^/:]*|\[[^\]]*\])(:\d+)?/i.exec(value);
  if (url) return `"${value}" is a URL; give the bare address ("${url[1].replace(/^\[(.*)\]$/, "$1")}"): drop the scheme and the port; use ssh.port for the SSH port`;
  const m = /^(\[([^\]]+)\]|[^:]+):(\d+)$/.exec(value);
  if (m) return `"${value}" has a port; drop the port ("${m[2] ?? m[1]}") and use ssh.port for the SSH port`;
  return undefined;
}

/** A port given as a number (a string such as "22" is refused, unless it is a Terraform token). */
export function checkPortNumber(value: unknown): string | undefined {
  if (isToken(value)) return undefined;
  if (typeof value !== "number") return `${JSON.stringify(value)} is a ${typeof value}; give the port as a number, e.g. port: ${Number.parseInt(String(value), 10) || 22}`;
  return checkPort(value);
}

/**
 * Where Terraform uploads a remote script. Terraform runs it unquoted (`chmod 0777 PATH && PATH`), so
 * only plain path characters are allowed, and parallel steps on one host need Terraform's `%RAND%`.
 */
export function checkScriptPath(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (!/^\/(?:[A-Za-z0-9._/-]|%RAND%)+$/.test(value)) {
    return `"${value}" must be an absolute path of letters, digits, ".", "_", "-" and "/" (Terraform runs it unquoted), with %RAND% in the file name, e.g. /var/tmp/terraform_%RAND%.sh`;
  }
  if (!value.includes("%RAND%")) {
    return `"${value}" must contain %RAND%: steps that run at the same time on one host would otherwise overwrite each other's script (e.g. ${value.replace(/(\.sh)?$/, "_%RAND%$1")})`;
  }
  return undefined;
}

/**
 * Ranges a node's public `address` can never be: other nodes and clients could not reach it there.
 * Private ranges are allowed (a lab, or nodes that share a private network).
 */
export function checkNodeAddress(value: string): string | undefined {
  if (isToken(value) || checkIp(value)) return undefined;
  const ip = ipaddr.parse(value);
  switch (ip.range()) {
    case "unspecified": return `"${value}" means "any address" and reaches no host; give the node's public IP`;
    case "loopback": return `"${value}" is a loopback address: other nodes would reach themselves; give the node's public IP (for an SSH tunnel, put the loopback address in ssh.host)`;
    case "linkLocal": return `"${value}" is a link-local address, not routable beyond the node's own link; give the node's public IP`;
    case "multicast": case "broadcast": return `"${value}" is a ${ip.range()} address, not a host; give the node's public IP`;
    case "ipv4Mapped": return `"${value}" is an IPv4 address in IPv6 form; write it as ${(ip as ipaddr.IPv6).toIPv4Address().toString()}`;
    default: return undefined;
  }
}

/**
 * Key material given literally: it would be written in clear into cdk.tf.json (and saved plans).
 * Tokens (a sensitive TerraformVariable, another resource's attribute) pass.
 */
export function checkNotLiteralSecret(value: string, alternative: string): string | undefined {
  if (isToken(value)) return undefined;
  return `a literal key would be written in clear into cdk.tf.json and every saved plan; ${alternative}`;
}

/** A sha256 digest: 64 hexadecimal digits. */
export function checkSha256(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (!/^[0-9a-f]{64}$/i.test(value)) return `"${value}" is not a sha256 digest (64 hexadecimal digits, as printed by sha256sum)`;
  return undefined;
}

/**
 * A container image reference that pins a version: `name:tag` with a tag other than latest,
 * and/or `@sha256:` followed by exactly 64 lower-case hex digits.
 */
export function checkImage(image: string): string | undefined {
  if (isToken(image)) return undefined;
  if (image === "" || /\s/.test(image)) return `"${image}" is not an image reference such as registry/repository:tag`;
  const at = image.indexOf("@");
  const name = at >= 0 ? image.slice(0, at) : image;
  const digest = at >= 0 ? image.slice(at + 1) : undefined;
  if (digest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(digest)) {
    return `"${image}" has a malformed digest "${digest}": write @sha256: followed by 64 lower-case hexadecimal digits`;
  }
  const last = name.slice(name.lastIndexOf("/") + 1);
  const tag = last.includes(":") ? last.slice(last.indexOf(":") + 1) : undefined;
  if (name === "" || last === "" || (tag !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag))) {
    return `"${image}" is not an image reference such as registry/repository:tag`;
  }
  if (digest === undefined && (tag === undefined || tag === "latest")) {
    return `"${image}" does not pin a version; name a release tag or a digest (nothing floats)`;
  }
  return undefined;
}

/**
 * A warning for a source network so wide it is most of the Internet: /0, or shorter than /8
 * (IPv4) or /32 (IPv6). Undefined for tokens, malformed values and ordinary prefixes.
 */
export function wideCidrWarning(value: string): string | undefined {
  if (isToken(value) || checkCidr(value)) return undefined;
  const [addr, bits] = ipaddr.parseCIDR(value);
  if (bits === 0) return `"${value}" is the whole Internet`;
  const floor = addr.kind() === "ipv4" ? 8 : 32;
  if (bits < floor) return `"${value}" is a very wide network (/${bits}, more than a /${floor})`;
  return undefined;
}

/** Whether a literal address or CIDR lies inside (or overlaps) a literal CIDR; false for tokens or malformed values. */
export function overlaps(a: string, b: string): boolean {
  const norm = (x: string) => (x.includes("/") ? x : `${x}/${x.includes(":") ? 128 : 32}`);
  if (isToken(a) || isToken(b)) return false;
  let pa: [ipaddr.IPv4 | ipaddr.IPv6, number];
  let pb: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    pa = ipaddr.parseCIDR(norm(a));
    pb = ipaddr.parseCIDR(norm(b));
  } catch {
    return false;
  }
  if (pa[0].kind() !== pb[0].kind()) return false;
  return pa[1] <= pb[1] ? pb[0].match(pa[0], pa[1]) : pa[0].match(pb[0], pb[1]);
}

// ---------------------------------------------------------------------------------------------
// Strings that mix literal text with Terraform values

/** Stands for a part of a string only Terraform knows, in literalShape's result. */
export const UNKNOWN = "\u0000";

// cdktf's markers for a string, list and map token.
const TOKEN_SPLIT = /([$#&]\{TfToken\[[A-Z]+\.\d+\]\})/;

/**
 * The text a string will have once Terraform has computed it, with each part only Terraform knows
 * replaced by UNKNOWN. A literal is itself, a token alone is UNKNOWN, and a string that mixes both
 * — a template string, `Fn.join`, `Fn.format`, `Fn.sensitive` of those — keeps its literal
 * fragments in place: they are written into cdk.tf.json as they are.
 */
export function literalShape(value: unknown): string {
  return shapeOf(value, 0);
}

function shapeOf(value: unknown, depth: number): string {
  if (depth > 16) return UNKNOWN;
  if (typeof value === "string") {
    if (!Token.isUnresolved(value)) return value;
    return value.split(TOKEN_SPLIT).map((part, i) => {
      if (i % 2 === 0) return part;
      const token = Tokenization.reverseString(part).firstToken;
      return token === undefined ? UNKNOWN : shapeOfToken(token, depth + 1);
    }).join("");
  }
  if (Tokenization.isResolvable(value)) return shapeOfToken(value, depth + 1);
  return UNKNOWN;
}

/** A Terraform function call cdktf builds (`Fn.*`): its name and arguments as given. */
function functionCall(token: unknown): { name: string; args: unknown[] } | undefined {
  const t = token as { name?: unknown; args?: unknown };
  return typeof t?.name === "string" && Array.isArray(t.args) ? { name: t.name, args: t.args } : undefined;
}

function shapeOfToken(token: unknown, depth: number): string {
  const call = functionCall(token);
  if (!call) return UNKNOWN;
  const [first, ...rest] = call.args;
  switch (call.name) {
    case "sensitive": case "nonsensitive": case "tostring":
      return shapeOf(first, depth);
    case "join": {
      // join(separator, list...): the lists' elements, as given, joined.
      const sep = shapeOf(first, depth);
      const items = rest.flatMap((list) => (Array.isArray(list) ? list : [UNKNOWN]));
      return items.map((x) => (x === UNKNOWN ? UNKNOWN : shapeOf(x, depth))).join(sep);
    }
    case "format": {
      // cdktf quotes literal arguments of format ("\"value\""); a token argument stays a token.
      const args = rest.map((a) => (typeof a === "string" && !Token.isUnresolved(a) && /^".*"$/s.test(a) ? a.slice(1, -1) : a));
      let next = 0;
      return shapeOf(first, depth).replace(/%%|%[-+# 0-9.]*[a-z]/gi, (m) => (m === "%%" ? "%" : next < args.length ? shapeOf(args[next++], depth) : UNKNOWN));
    }
    default:
      return UNKNOWN;
  }
}

/** Whether a string holds any literal text (it is not a Terraform value alone). */
export function hasLiteral(value: string): boolean {
  return literalShape(value).replace(new RegExp(UNKNOWN, "g"), "") !== "";
}

/**
 * The userinfo (`user[:password]@`) of a URL given as literalShape's result, or undefined when it
 * has none. Everything between `://` and the last `@` before the path counts, so a password
 * holding `/`, `?` or `#` is found too; an `@` that belongs to the path must be written %40.
 */
export function urlUserinfo(shape: string): { user: string; password?: string } | undefined {
  const m = /^[A-Za-z\u0000][A-Za-z0-9+.\-\u0000]*:\/\/(.*)$/s.exec(shape);
  if (!m) return undefined;
  const rest = m[1];
  const at = rest.lastIndexOf("@");
  if (at < 0) return undefined;
  const userinfo = rest.slice(0, at);
  const colon = userinfo.indexOf(":");
  return colon < 0 ? { user: userinfo } : { user: userinfo.slice(0, colon), password: userinfo.slice(colon + 1) };
}

/** Literal text for a message, with the parts only Terraform knows written as ${…}. */
export function showShape(shape: string): string {
  return shape.replace(new RegExp(UNKNOWN, "g"), "${…}");
}

/** A URL's shape with its userinfo's password (or the whole userinfo without one) masked, for messages. */
function maskUserinfo(shape: string): string {
  return showShape(shape.replace(/^([^:]*:\/\/)(.*)@/s, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(":");
    return `${scheme}${colon < 0 ? "***" : `${userinfo.slice(0, colon)}:***`}@`;
  }));
}

/** The literal characters of a shape (its known parts). */
function known(shape: string): string {
  return shape.split(UNKNOWN).join("");
}

/**
 * An external datastore endpoint (K3s `datastore-endpoint`), literal or literal text around
 * Terraform values: one of the schemes K3s takes, and no password in a literal part. A password in
 * a literal fragment is written into cdk.tf.json whatever else comes from Terraform.
 */
export function checkDatastoreEndpoint(value: string): string | undefined {
  const shape = literalShape(value);
  if (known(shape) === "") return undefined;
  const scheme = /^([^:/]*):\/\//.exec(shape)?.[1];
  if (!shape.startsWith(UNKNOWN) && (scheme === undefined || (!scheme.includes(UNKNOWN) && !/^(postgres|mysql|https?|unixs?)$/.test(scheme)))) {
    return "give a postgres://, mysql:// or https:// (etcd) endpoint, as K3s's datastore-endpoint takes";
  }
  const userinfo = urlUserinfo(shape);
  const inUserinfo = userinfo?.password !== undefined && known(userinfo.password) !== "";
  const inQuery = /[?&]password=([^&]*)/i.exec(shape);
  if (inUserinfo || (inQuery && known(inQuery[1]) !== "")) {
    const mixed = shape.includes(UNKNOWN);
    return `this endpoint carries a password as plain text${mixed ? ` in its literal part ("${maskUserinfo(shape).replace(/(password=)[^&]*/gi, "$1***")}")` : ""}, ` +
      `which would be written into the synthesized JSON (cdk.tf.json) and every saved plan${mixed ? ", although other parts of it come from Terraform" : ""}; ` +
      "pass it as a sensitive TerraformVariable's value (or a secret manager's data source) instead: the whole endpoint, or at least the password" +
      (inUserinfo && /[/?#]/.test(userinfo!.password!) ? " (if that @ belongs to the path or query rather than ending user:password, write it %40)" : "");
  }
  return undefined;
}

/**
 * Why the datastore endpoint's traffic may cross the network unencrypted or to an impostor, and the
 * fix, or undefined: etcd over http://, PostgreSQL with an sslmode that allows plaintext (pgx's
 * default, prefer, falls back to it) or encrypts unverified (require), MySQL without TLS or with
 * tls=skip-verify. Only literal parts are read; an endpoint on the same host is not
 * named. `tlsFiles`: datastore-cafile/-certfile/-keyfile are set, which makes K3s (kine) use TLS
 * with verification when the endpoint names no mode.
 */
export function datastorePlaintextRisk(value: string, tlsFiles: boolean): { risk: string; fix: string } | undefined {
  const shape = literalShape(value);
  const m = /^(postgres|postgresql|mysql|http):\/\//i.exec(shape);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  const rest = shape.slice(m[0].length);
  const afterUserinfo = rest.slice(rest.lastIndexOf("@") + 1);
  let host: string;
  if (scheme === "mysql") {
    const addr = /^(tcp|unix)\(([^)]*)\)/.exec(afterUserinfo);
    if (addr?.[1] === "unix") return undefined;
    host = (addr?.[2] ?? "").replace(/:\d+$/, "");
  } else {
    host = /^(\[[^\]]*\]|[^:/?]*)/.exec(afterUserinfo)![1];
  }
  if (/^(localhost|127\.\d+\.\d+\.\d+|\[?::1\]?)$/i.test(host)) return undefined;
  const query = afterUserinfo.includes("?") ? afterUserinfo.slice(afterUserinfo.indexOf("?") + 1) : "";
  const param = (name: string) => new RegExp(`(?:^|&)${name}=([^&]*)`, "i").exec(query)?.[1];
  // A missing parameter is certainly missing only when no Terraform value could add it.
  const certainlyAbsent = !afterUserinfo.includes(UNKNOWN) && !tlsFiles;
  const fallsBack = "which falls back to plaintext when the server or anyone on the way declines TLS";
  const unverified = "which encrypts but never checks the server's certificate: anyone on the way can pose as the datastore";
  if (scheme === "http") {
    return { risk: "http:// reaches etcd in plaintext", fix: "use https:// with datastore-cafile, datastore-certfile and datastore-keyfile in extraConfig" };
  }
  if (scheme === "mysql") {
    const fix = "add tls=true, or set datastore-cafile in extraConfig (K3s then verifies the server's certificate)";
    const tls = param("tls");
    if (tls === undefined) return certainlyAbsent ? { risk: "has no tls parameter, so K3s's MySQL driver talks to the server in plaintext", fix } : undefined;
    if (tls === "false") return { risk: "has tls=false, which never encrypts", fix };
    if (tls === "preferred") return { risk: `has tls=preferred, ${fallsBack}`, fix };
    if (tls === "skip-verify") return { risk: `has tls=skip-verify, ${unverified}`, fix: "use tls=true, which checks the server's certificate (with datastore-cafile in extraConfig when it comes from a private CA)" };
    return undefined;
  }
  const fix = "add sslmode=verify-full (with datastore-cafile in extraConfig when the server's certificate comes from a private CA)";
  const mode = param("sslmode");
  if (mode === undefined) {
    return certainlyAbsent ? { risk: "names no sslmode, so K3s's PostgreSQL driver (pgx) uses sslmode=prefer: TLS without a certificate check, " + fallsBack.replace("which ", ""), fix } : undefined;
  }
  if (mode === "disable") return { risk: "has sslmode=disable: PostgreSQL traffic in plaintext", fix };
  if (mode === "allow" || mode === "prefer") return { risk: `has sslmode=${mode}, ${fallsBack}`, fix };
  if (mode === "require") return { risk: `has sslmode=require, ${unverified}`, fix };
  return undefined;
}

/** The address family of a literal CIDR block or address, or undefined (token, malformed). */
export function family(value: string): "ipv4" | "ipv6" | undefined {
  if (isToken(value)) return undefined;
  const ip = value.includes("/") ? value.slice(0, value.indexOf("/")) : value;
  if (checkIp(ip)) return undefined;
  return ip.includes(":") ? "ipv6" : "ipv4";
}

/**
 * A number only Terraform knows (a number variable, another resource's attribute): cdktf encodes
 * it as a huge negative double, which must never reach a message or a script as if it were one.
 */
export function isNumberToken(value: unknown): boolean {
  return typeof value === "number" && Token.isUnresolved(value);
}

/** The message for a number that decides generated scripts at synth but was given as a Terraform value. */
export function synthTimeNumber(what: string, example: string): string {
  return `a Terraform value (a variable or another resource's attribute) cannot be used here: ${what} is written into the generated scripts at synth, ` +
    `before Terraform knows the value; give a number, such as ${example}`;
}

/** The fields of a five-field cron schedule as K3s reads it (robfig/cron's standard parser). */
const CRON_FIELDS: Array<{ name: string; min: number; max: number; names?: string[]; question?: boolean }> = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31, question: true },
  { name: "month", min: 1, max: 12, names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"] },
  { name: "day of week", min: 0, max: 6, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], question: true },
];

/**
 * A cron schedule for K3s's `etcd-snapshot-schedule-cron`: five fields (minute hour day-of-month
 * month day-of-week), each `*`, a value, a range or a list, with an optional `/step`; or one of
 * robfig/cron's descriptors (`@daily`, `@every 6h`, …), which K3s's parser also takes.
 */
export function checkCron(value: string): string | undefined {
  if (isToken(value)) return undefined;
  const example = "such as \"0 */6 * * *\" (every 6 hours, on the hour)";
  const v = value.trim();
  if (/^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$/.test(v)) return undefined;
  if (v.startsWith("@every")) {
    return /^@every\s+(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v) ? undefined : `"${value}": write @every followed by a duration, such as "@every 6h"`;
  }
  const fields = v === "" ? [] : v.split(/\s+/);
  if (fields.length !== 5) {
    return `"${value}" has ${fields.length} field${fields.length === 1 ? "" : "s"}; give the five fields of a cron schedule (minute hour day-of-month month day-of-week), ${example}`;
  }
  for (let i = 0; i < 5; i++) {
    const f = CRON_FIELDS[i];
    const num = (s: string): number | undefined => {
      const byName = f.names?.indexOf(s.toUpperCase()) ?? -1;
      if (byName >= 0) return byName + f.min;
      return /^\d+$/.test(s) ? Number(s) : undefined;
    };
    for (const item of fields[i].split(",")) {
      const m = /^(\*|\?|([A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?)(?:\/(\d+))?$/.exec(item);
      const bad = (why: string) => `"${value}": the ${f.name} field "${fields[i]}" ${why}; ${example}`;
      if (!m) return bad("is not *, a value, a range (a-b) or a list of them, each with an optional /step");
      if (m[1] === "?" && !f.question) return bad("may not be ? (only the day fields may)");
      if (m[4] !== undefined && Number(m[4]) < 1) return bad("has a step of 0");
      for (const part of [m[2], m[3]]) {
        if (part === undefined) continue;
        const n = num(part);
        if (n === undefined || n < f.min || n > f.max) return bad(`holds "${part}", outside ${f.min}-${f.max}${f.names ? ` (or ${f.names[0]}-${f.names[f.names.length - 1]})` : ""}`);
      }
      if (m[3] !== undefined && num(m[2]!)! > num(m[3])!) return bad(`has the range ${m[2]}-${m[3]}, which runs backwards`);
    }
  }
  return undefined;
}

/**
 * An S3 endpoint as K3s's `etcd-s3-endpoint` takes it: a host name or address with an optional
 * port, no scheme and no path (K3s picks HTTPS, or HTTP with `etcd-s3-insecure`).
 */
export function checkS3Endpoint(value: string): string | undefined {
  if (isToken(value)) return undefined;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(value);
  if (scheme) {
    const host = scheme[2].replace(/\/.*$/, "");
    return `"${value}": give the host (and port) only, without ${scheme[1]}://, such as "${host || "s3.example.com"}": K3s connects over HTTPS (over HTTP only with insecure: true)`;
  }
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:/\s[\]]+)(?::(\d{1,5}))?$/.exec(value);
  if (!m) return `"${value}" is not a host name or address with an optional :port, such as "s3.eu-central-1.amazonaws.com" or "minio.example.com:9000"`;
  const host = m[1].startsWith("[") ? m[1].slice(1, -1) : m[1];
  if (checkAddress(host) !== undefined) return `"${value}": "${host}" is not a host name or IP address`;
  if (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return `"${value}": port ${m[2]} is not between 1 and 65535`;
  return undefined;
}

/** An S3 bucket name: no scheme, slash or whitespace (S3 and its clones take 3 to 63 characters). */
export function checkS3Bucket(value: string): string | undefined {
  if (isToken(value)) return undefined;
  if (/^s3:\/\//i.test(value)) return `"${value}": give the bucket's name only ("${value.replace(/^s3:\/\//i, "").replace(/\/.*$/, "")}"), and any path under it as folder`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$/.test(value)) {
    return `"${value}" is not a bucket name: 3 to 63 letters, digits, dots, hyphens or underscores, starting and ending with a letter or digit${value.includes("/") ? " (a path under the bucket goes in folder)" : ""}`;
  }
  return undefined;
}

/**
 * A credential that must come whole from Terraform (a sensitive variable or a secret manager's data
 * source): any literal text in it would be written in clear into cdk.tf.json. The message never
 * repeats the value.
 */
export function checkSecretFromTerraform(value: string, example: string): string | undefined {
  if (typeof value !== "string") return "give a string from Terraform (a sensitive TerraformVariable's stringValue)";
  if (!hasLiteral(value)) return undefined;
  const mixed = isToken(value);
  return `${mixed ? "part of this value is literal text" : "a literal value"}, which would be written in clear into cdk.tf.json and every saved plan, is refused for a credential; ` +
    `pass the whole value from Terraform: a TerraformVariable with sensitive: true (${example}) or a secret manager's data source`;
}
