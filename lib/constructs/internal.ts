/**
 * Small wiring helpers shared by the constructs. Not exported from the package.
 */
import { createHash } from "crypto";
import { Fn, TerraformProvider, TerraformResource, TerraformStack, ITerraformDependable, TerraformResourceLifecycle } from "cdktf";
import { Construct, IConstruct } from "constructs";
import * as localProvider from "@cdktf/provider-local/lib/provider";
import * as nullProvider from "@cdktf/provider-null/lib/provider";
import * as randomProvider from "@cdktf/provider-random/lib/provider";

export interface TerraformDataConfig {
  readonly triggersReplace?: unknown;
  readonly input?: unknown;
  readonly dependsOn?: ITerraformDependable[];
  readonly lifecycle?: TerraformResourceLifecycle;
}

/**
 * Terraform's built-in `terraform_data` (Terraform >= 1.4, OpenTofu alike). cdktf's own
 * DataResource runs `terraform version` during synth, which fails on machines that only
 * synthesize; this one emits the same resource without that check.
 */
export class TerraformData extends TerraformResource {
  private readonly triggersReplace?: unknown;
  private readonly input?: unknown;

  constructor(scope: Construct, id: string, config: TerraformDataConfig = {}) {
    super(scope, id, {
      terraformResourceType: "terraform_data",
      terraformGeneratorMetadata: { providerName: "terraform" },
      dependsOn: config.dependsOn,
      lifecycle: config.lifecycle,
    });
    this.triggersReplace = config.triggersReplace;
    this.input = config.input;
  }

  protected synthesizeAttributes(): { [name: string]: any } {
    return { triggers_replace: this.triggersReplace, input: this.input };
  }

  protected synthesizeHclAttributes(): { [name: string]: any } {
    return {
      triggers_replace: { value: this.triggersReplace, type: "any" },
      input: { value: this.input, type: "any" },
    };
  }
}

type ProviderName = "local" | "null" | "random";

/**
 * Make sure the stack has a (default, unaliased) provider for `name`, creating one at stack level
 * when the user has not. Users who configure their own keep it.
 */
export function ensureProvider(scope: IConstruct, name: ProviderName): void {
  const stack = TerraformStack.of(scope);
  const has = stack.node.findAll().some((c) =>
    c instanceof TerraformProvider && c.terraformResourceType === name && c.alias === undefined);
  if (has) return;
  const id = `${name}-provider`;
  if (stack.node.tryFindChild(id)) return;
  switch (name) {
    case "local": new localProvider.LocalProvider(stack, id); break;
    case "null": new nullProvider.NullProvider(stack, id); break;
    case "random": new randomProvider.RandomProvider(stack, id); break;
  }
}

/**
 * Attach provisioners verbatim. cdktf's types allow `when = "destroy"` only on local-exec, and
 * no `on_failure` or per-provisioner `connection`; a raw override carries all three.
 */
export function setRawProvisioners(resource: TerraformResource, provisioners: Array<Record<string, unknown>>): void {
  resource.addOverride("provisioner", provisioners);
}

const TOKEN_MARKER = /\$\{TfToken\[[A-Z]+\.\d+\]\}/g;

/**
 * Make rendered text safe as a Terraform string: `${` and `%{` in shell scripts would otherwise
 * be read as Terraform interpolation and template directives. cdktf's own token markers, which
 * must become interpolations, are left alone.
 */
export function terraformLiteral(text: string): string {
  return text
    .replace(/\$\{(?!TfToken\[)/g, () => "$${")
    .replace(/%\{/g, () => "%%{");
}

/**
 * A digest of rendered text for `triggers_replace`: the literal part hashed at synth, the values
 * only Terraform knows (tokens, secrets among them) hashed by Terraform. Never the text itself.
 */
export function fingerprint(text: string): { [key: string]: string } {
  const markers = text.match(TOKEN_MARKER) ?? [];
  const digest: { [key: string]: string } = {
    text: createHash("sha256").update(text.replace(TOKEN_MARKER, "<value>")).digest("hex"),
  };
  if (markers.length) digest.values = Fn.sha256(Fn.join("\n", markers));
  return digest;
}
