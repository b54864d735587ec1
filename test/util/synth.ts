/** Helpers for synth tests: build a stack, synthesize it, and look resources up by construct path. */
import { App, TerraformStack, Testing } from "cdktf";

export function newStack(id = "cluster"): { app: App; stack: TerraformStack } {
  const app = Testing.app();
  return { app, stack: new TerraformStack(app, id) };
}

export interface Synthesized {
  resource: Record<string, Record<string, any>>;
  data?: Record<string, Record<string, any>>;
  output?: Record<string, any>;
  provider?: Record<string, any>;
  terraform?: Record<string, any>;
}

export function synth(stack: TerraformStack): Synthesized {
  const out = JSON.parse(Testing.synth(stack));
  // Each resource remembers its own stack's locals, so a shared program resolves only from there.
  for (const byName of Object.values(out.resource ?? {}) as Array<Record<string, any>>) {
    for (const r of Object.values(byName)) Object.defineProperty(r, LOCALS, { value: out.locals ?? {}, enumerable: false });
  }
  return out;
}

const LOCALS = Symbol("locals of the resource's stack");

/** The one resource of `type` whose logical id starts with the construct path prefix (a_b_...). */
export function resourceOf(out: Synthesized, type: string, prefix: string): any {
  const entries = Object.entries(out.resource[type] ?? {}).filter(([k]) => k.startsWith(prefix + "_"));
  if (entries.length !== 1) throw new Error(`expected one ${type} for ${prefix}, found ${entries.map(([k]) => k).join(", ") || "none"}`);
  return entries[0][1];
}

export function logicalId(out: Synthesized, type: string, prefix: string): string {
  const k = Object.keys(out.resource[type] ?? {}).find((id) => id.startsWith(prefix + "_"));
  if (!k) throw new Error(`no ${type} for ${prefix}`);
  return k;
}

/** Errors reported by node validations, as cdktf's App.synth would report them. */
export function validationErrors(stack: TerraformStack): string[] {
  return stack.node.findAll().flatMap((c) => c.node.validate());
}

/** Provisioner blocks of a resource, flattened to { type, ...body }. */
export function provisioners(resource: any): Array<Record<string, any>> {
  return (resource.provisioner ?? []).map((p: Record<string, any>) => {
    const [type, body] = Object.entries(p)[0] as [string, Record<string, any>];
    return { type, ...body, ...joinSharedScript(body.inline, resource[LOCALS]) };
  });
}

/**
 * A node script emitted as [node part, reference to a shared program] is given back as the one
 * script remote-exec runs: its inline lines joined with newlines, the program's text in place.
 */
function joinSharedScript(inline: unknown, locals: Record<string, string> | undefined): { inline?: string[] } {
  if (!Array.isArray(inline)) return {};
  const refs = inline.map((l) => typeof l === "string" ? /^\$\{local\.(k3s-script-[0-9a-f]+)\}$/.exec(l)?.[1] : undefined);
  if (!refs.some((r) => r !== undefined)) return {};
  return {
    inline: [inline.map((l, i) => {
      if (refs[i] === undefined) return l;
      const text = locals?.[refs[i]!];
      if (text === undefined) throw new Error(`no shared script ${refs[i]} in the resource's own stack (synthesize it with synth())`);
      return text;
    }).join("\n")],
  };
}

/**
 * Parse a rendered YAML file whose values may still hold unevaluated Terraform interpolations
 * (`"${sensitive(join("", [...]))}"`): such a value is re-quoted so YAML reads it as one string.
 */
export function parseRenderedYaml(content: string): any {
  const { parse } = require("yaml");
  const fixed = content.split("\n").map((line) => {
    const m = /^(\s*(?:[-\w./]+: |- ))"(\$\{.*\})"$/.exec(line);
    return m ? `${m[1]}${JSON.stringify(m[2])}` : line;
  }).join("\n");
  return parse(fixed);
}
