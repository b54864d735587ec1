/**
 * The subset of Terraform's expression language that cdktf-k3s-kilo's stacks emit, evaluated the way
 * Terraform would: string templates with `${…}` interpolations and `$${` / `%%{` escapes, references
 * (resources, data sources, `self`), list and object constructors, and a handful of functions.
 * Anything else — template directives, operators, conditionals, `for` expressions, other functions —
 * throws, so a stack that relies on something this harness cannot evaluate never passes silently.
 */
import { createHash } from "crypto";
import { readFileSync } from "fs";
import { homedir } from "os";

/** A value only known after apply. */
export const UNKNOWN: unique symbol = Symbol("unknown");
export type Value = string | number | boolean | null | Value[] | { [k: string]: Value } | typeof UNKNOWN;

export type Node =
  | { kind: "lit"; value: Value }
  | { kind: "template"; parts: Array<string | Node> }
  | { kind: "ref"; path: Array<string | Node> }
  | { kind: "call"; name: string; args: Node[] }
  | { kind: "list"; items: Node[] }
  | { kind: "object"; items: Array<[Node, Node]> }
  | { kind: "index"; target: Node; key: Node | string };

export class ExpressionError extends Error {}

/** Parse a JSON-syntax string value as a Terraform template. */
export function parseTemplate(src: string): Node {
  const p = new Parser(src, 0);
  const parts = p.templateParts(null);
  if (parts.length === 1 && typeof parts[0] !== "string") {
    // "${expr}" alone keeps the expression's type (Terraform's JSON syntax does the same).
    return parts[0];
  }
  return { kind: "template", parts };
}

class Parser {
  constructor(private readonly s: string, public i: number) {}

  private fail(msg: string): never {
    throw new ExpressionError(`${msg} at offset ${this.i} in: ${this.s.length > 300 ? this.s.slice(Math.max(0, this.i - 100), this.i + 100) : this.s}`);
  }

  /** Template text up to `end` (a closing quote) or the end of input. */
  templateParts(end: string | null): Array<string | Node> {
    const parts: Array<string | Node> = [];
    let lit = "";
    const s = this.s;
    while (this.i < s.length) {
      const c = s[this.i];
      if (end !== null && c === end) break;
      if (s.startsWith("$${", this.i)) { lit += "${"; this.i += 3; continue; }
      if (s.startsWith("%%{", this.i)) { lit += "%{"; this.i += 3; continue; }
      if (s.startsWith("${", this.i)) {
        if (lit) { parts.push(lit); lit = ""; }
        this.i += 2;
        this.ws();
        if (s[this.i] === "~") this.fail("strip markers (${~) are not supported by this harness");
        const e = this.expr();
        this.ws();
        if (s[this.i] === "~") this.fail("strip markers (~}) are not supported by this harness");
        if (s[this.i] !== "}") this.fail(`expected } to close the interpolation, found ${JSON.stringify(s[this.i] ?? "end")}`);
        this.i++;
        parts.push(e);
        continue;
      }
      if (s.startsWith("%{", this.i)) this.fail("template directives (%{ if/for }) are not supported by this harness");
      if (end !== null && c === "\\") {
        const n = s[this.i + 1];
        const map: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\"": "\"", "\\": "\\" };
        if (n in map) { lit += map[n]; this.i += 2; continue; }
        if (n === "u") { lit += String.fromCharCode(parseInt(s.slice(this.i + 2, this.i + 6), 16)); this.i += 6; continue; }
        this.fail(`unsupported escape \\${n}`);
      }
      lit += c;
      this.i++;
    }
    if (lit || parts.length === 0) parts.push(lit);
    return parts;
  }

  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i])) this.i++;
  }

  private ident(): string {
    const m = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(this.s.slice(this.i));
    if (!m) this.fail("expected a name");
    this.i += m[0].length;
    return m[0];
  }

  expr(): Node {
    this.ws();
    let n = this.primary();
    for (;;) {
      this.ws();
      const c = this.s[this.i];
      if (c === ".") {
        this.i++;
        if (/[0-9]/.test(this.s[this.i])) this.fail("legacy index syntax (.0) is not supported");
        if (this.s[this.i] === "*") this.fail("splat expressions are not supported by this harness");
        const name = this.ident();
        n = n.kind === "ref" ? { kind: "ref", path: [...n.path, name] } : { kind: "index", target: n, key: name };
      } else if (c === "[") {
        this.i++;
        this.ws();
        if (this.s[this.i] === "*") this.fail("splat expressions are not supported by this harness");
        const k = this.expr();
        this.ws();
        if (this.s[this.i] !== "]") this.fail("expected ]");
        this.i++;
        n = n.kind === "ref" ? { kind: "ref", path: [...n.path, k] } : { kind: "index", target: n, key: k };
      } else {
        break;
      }
    }
    this.ws();
    const rest = this.s[this.i];
    if (rest !== undefined && /[-+*/%<>=!&|?]/.test(rest)) {
      this.fail(`operators and conditionals (${rest}) are not supported by this harness`);
    }
    return n;
  }

  private primary(): Node {
    const s = this.s;
    const c = s[this.i];
    if (c === undefined) this.fail("unexpected end of expression");
    if (c === "\"") {
      this.i++;
      const parts = this.templateParts("\"");
      if (s[this.i] !== "\"") this.fail("unterminated string");
      this.i++;
      return parts.length === 1 && typeof parts[0] === "string" ? { kind: "lit", value: parts[0] } : { kind: "template", parts };
    }
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(s.slice(this.i))!;
      this.i += m[0].length;
      return { kind: "lit", value: Number(m[0]) };
    }
    if (c === "[") {
      this.i++;
      const items: Node[] = [];
      for (;;) {
        this.ws();
        if (s[this.i] === "]") { this.i++; break; }
        if (/^for\s/.test(s.slice(this.i, this.i + 4))) this.fail("for expressions are not supported by this harness");
        items.push(this.expr());
        this.ws();
        if (s[this.i] === ",") { this.i++; continue; }
        if (s[this.i] === "]") { this.i++; break; }
        if (s.startsWith("for ", this.i)) this.fail("for expressions are not supported by this harness");
        this.fail("expected , or ] in a list");
      }
      return { kind: "list", items };
    }
    if (c === "{") {
      this.i++;
      const items: Array<[Node, Node]> = [];
      for (;;) {
        this.ws();
        if (s[this.i] === "}") { this.i++; break; }
        let key: Node;
        if (s[this.i] === "\"" ) key = this.primary();
        else if (s[this.i] === "(") { this.i++; key = this.expr(); this.ws(); if (s[this.i] !== ")") this.fail("expected )"); this.i++; }
        else {
          const id = this.ident();
          if (id === "for") this.fail("for expressions are not supported by this harness");
          key = { kind: "lit", value: id };
        }
        this.ws();
        if (s[this.i] !== "=" && s[this.i] !== ":") this.fail("expected = or : in an object");
        this.i++;
        const v = this.expr();
        items.push([key, v]);
        this.ws();
        if (s[this.i] === ",") this.i++;
      }
      return { kind: "object", items };
    }
    if (c === "(") {
      this.i++;
      const e = this.expr();
      this.ws();
      if (s[this.i] !== ")") this.fail("expected )");
      this.i++;
      return e;
    }
    if (c === "<" && s.startsWith("<<", this.i)) this.fail("heredocs are not supported by this harness");
    const name = this.ident();
    if (name === "true") return { kind: "lit", value: true };
    if (name === "false") return { kind: "lit", value: false };
    if (name === "null") return { kind: "lit", value: null };
    this.ws();
    if (s[this.i] === "(") {
      this.i++;
      const args: Node[] = [];
      for (;;) {
        this.ws();
        if (s[this.i] === ")") { this.i++; break; }
        args.push(this.expr());
        this.ws();
        if (s.startsWith("...", this.i)) this.fail("argument expansion (...) is not supported by this harness");
        if (s[this.i] === ",") { this.i++; continue; }
        if (s[this.i] === ")") { this.i++; break; }
        this.fail("expected , or ) in a function call");
      }
      return { kind: "call", name, args };
    }
    return { kind: "ref", path: [name] };
  }
}

/** The references an expression makes, as their leading names (e.g. ["random_password", "x", "result"]). */
export function references(n: Node, out: string[][] = []): string[][] {
  switch (n.kind) {
    case "lit": break;
    case "template": for (const p of n.parts) if (typeof p !== "string") references(p, out); break;
    case "ref": {
      const names: string[] = [];
      for (const p of n.path) { if (typeof p === "string") names.push(p); else { references(p, out); break; } }
      out.push(names);
      for (const p of n.path) if (typeof p !== "string") references(p, out);
      break;
    }
    case "call": for (const a of n.args) references(a, out); break;
    case "list": for (const a of n.items) references(a, out); break;
    case "object": for (const [k, v] of n.items) { references(k, out); references(v, out); } break;
    case "index": references(n.target, out); if (typeof n.key !== "string") references(n.key, out); break;
  }
  return out;
}

export interface EvalContext {
  /** Resolve a reference path (names and evaluated keys) to a value. */
  resolve(path: Array<string | Value>): Value;
  /** Called with every value that passes through sensitive(). */
  onSensitive?(v: Value): void;
}

function isUnknown(v: Value): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(isUnknown);
  if (v && typeof v === "object") return Object.values(v).some(isUnknown);
  return false;
}

function toStr(v: Value, what: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  throw new ExpressionError(`${what}: expected a string, got ${v === null ? "null" : Array.isArray(v) ? "a list" : typeof v}`);
}

function index(target: Value, key: Value): Value {
  if (target === UNKNOWN || key === UNKNOWN) return UNKNOWN;
  if (Array.isArray(target)) {
    const i = Number(key);
    if (!Number.isInteger(i) || i < 0 || i >= target.length) throw new ExpressionError(`index ${String(key)} out of range`);
    return target[i];
  }
  if (target && typeof target === "object") {
    const k = toStr(key, "object key");
    if (!(k in target)) throw new ExpressionError(`this object does not have an attribute named "${k}"`);
    return (target as Record<string, Value>)[k];
  }
  throw new ExpressionError(`cannot index ${JSON.stringify(target)}`);
}

/** Terraform's jsonencode: object attributes sorted by name, no HTML escaping surprises. */
export function jsonencode(v: Value): string {
  if (v === UNKNOWN) throw new ExpressionError("jsonencode of an unknown value");
  if (Array.isArray(v)) return `[${v.map(jsonencode).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${jsonencode((v as Record<string, Value>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

const FUNCTIONS: Record<string, (ctx: EvalContext, args: Value[]) => Value> = {
  sensitive: (ctx, [v]) => { ctx.onSensitive?.(v); return v; },
  nonsensitive: (_ctx, [v]) => v,
  join: (_ctx, [sep, list]) => {
    if (!Array.isArray(list)) throw new ExpressionError("join: second argument must be a list");
    return list.map((x) => toStr(x, "join element")).join(toStr(sep, "join separator"));
  },
  jsonencode: (_ctx, [v]) => jsonencode(v),
  jsondecode: (_ctx, [v]) => {
    try { return JSON.parse(toStr(v, "jsondecode")) as Value; } catch (e) { throw new ExpressionError(`jsondecode: ${(e as Error).message}`); }
  },
  lookup: (_ctx, args) => {
    const [m, k, d] = args;
    if (!m || typeof m !== "object" || Array.isArray(m)) throw new ExpressionError("lookup: first argument must be a map or object");
    const key = toStr(k, "lookup key");
    if (key in m) return (m as Record<string, Value>)[key];
    if (args.length < 3) throw new ExpressionError(`lookup: no key "${key}" and no default`);
    return d;
  },
  sha256: (_ctx, [v]) => createHash("sha256").update(toStr(v, "sha256"), "utf8").digest("hex"),
  file: (_ctx, [p]) => {
    const path = toStr(p, "file");
    try { return readFileSync(path, "utf8"); } catch (e) { throw new ExpressionError(`file("${path}"): ${(e as Error).message}`); }
  },
  pathexpand: (_ctx, [p]) => {
    const path = toStr(p, "pathexpand");
    return path === "~" ? homedir() : path.startsWith("~/") ? `${homedir()}${path.slice(1)}` : path;
  },
  replace: (_ctx, [s, sub, rep]) => {
    const str = toStr(s, "replace"); const from = toStr(sub, "replace substring"); const to = toStr(rep, "replace replacement");
    if (from.length > 1 && from.startsWith("/") && from.endsWith("/")) {
      const re = new RegExp(from.slice(1, -1), "g");
      return str.replace(re, to.replace(/\$\{?(\d+)\}?/g, "$$$1"));
    }
    return str.split(from).join(to);
  },
  tostring: (_ctx, [v]) => (v === null ? null : toStr(v, "tostring")),
};

export function evaluate(n: Node, ctx: EvalContext): Value {
  switch (n.kind) {
    case "lit": return n.value;
    case "template": {
      let out = "";
      for (const p of n.parts) {
        if (typeof p === "string") { out += p; continue; }
        const v = evaluate(p, ctx);
        if (isUnknown(v)) return UNKNOWN;
        out += toStr(v, "interpolation");
      }
      return out;
    }
    case "ref": {
      const path: Array<string | Value> = [];
      for (const p of n.path) {
        if (typeof p === "string") path.push(p);
        else { const k = evaluate(p, ctx); if (k === UNKNOWN) return UNKNOWN; path.push(k); }
      }
      return ctx.resolve(path);
    }
    case "call": {
      const f = FUNCTIONS[n.name];
      if (!f) throw new ExpressionError(`function ${n.name}() is not supported by this harness (supported: ${Object.keys(FUNCTIONS).join(", ")})`);
      const args = n.args.map((a) => evaluate(a, ctx));
      if (n.name === "sensitive") { if (!isUnknown(args[0])) ctx.onSensitive?.(args[0]); return args[0]; }
      if (args.some(isUnknown)) return UNKNOWN;
      return f(ctx, args);
    }
    case "list": return n.items.map((x) => evaluate(x, ctx));
    case "object": {
      const o: Record<string, Value> = {};
      for (const [k, v] of n.items) {
        const key = evaluate(k, ctx);
        if (key === UNKNOWN) return UNKNOWN;
        o[toStr(key, "object key")] = evaluate(v, ctx);
      }
      return o;
    }
    case "index": return index(evaluate(n.target, ctx), typeof n.key === "string" ? n.key : evaluate(n.key, ctx));
  }
}

/** Evaluate every string in a JSON config value as a template. */
export function evaluateDeep(v: unknown, ctx: EvalContext): Value {
  if (typeof v === "string") return evaluate(parseTemplate(v), ctx);
  if (Array.isArray(v)) return v.map((x) => evaluateDeep(x, ctx));
  if (v && typeof v === "object") {
    const o: Record<string, Value> = {};
    for (const [k, x] of Object.entries(v)) o[k] = evaluateDeep(x, ctx);
    return o;
  }
  return v as Value;
}

/** All references in every string of a JSON config value. */
export function referencesDeep(v: unknown, out: string[][] = []): string[][] {
  if (typeof v === "string") references(parseTemplate(v), out);
  else if (Array.isArray(v)) for (const x of v) referencesDeep(x, out);
  else if (v && typeof v === "object") for (const x of Object.values(v)) referencesDeep(x, out);
  return out;
}

export { isUnknown };
