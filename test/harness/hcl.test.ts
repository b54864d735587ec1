/** The harness's Terraform expression evaluator: what it evaluates, and that it refuses the rest. */
import { createHash } from "crypto";
import { evaluate, evaluateDeep, jsonencode, parseTemplate, references, UNKNOWN, Value } from "./hcl";

const ctx = (vals: Record<string, Value> = {}) => ({
  resolve: (path: Array<string | Value>) => {
    const key = path.join(".");
    if (key in vals) return vals[key];
    throw new Error(`unknown reference ${path.join(".")}`);
  },
});
const ev = (s: string, vals: Record<string, Value> = {}) => evaluate(parseTemplate(s), ctx(vals));

describe("harness HCL subset", () => {
  test("escapes stay literal, interpolations evaluate", () => {
    expect(ev("a $${X} b %%{y} c")).toBe("a ${X} b %{y} c");
    expect(ev("x=${random_password.p.result}!", { "random_password.p.result": "s3cret" })).toBe("x=s3cret!");
    // A lone interpolation keeps its type.
    expect(ev("${self.input.port}", { "self.input.port": 22 })).toBe(22);
  });

  test("the functions our stacks emit", () => {
    const vals = { "data.local_command.c.stdout": JSON.stringify({ ca_hash: "ab12", n: 1 }), "random_password.t.result": "tok" };
    expect(ev('${sensitive(join("", ["K10", jsondecode(data.local_command.c.stdout).ca_hash, "::node:", random_password.t.result]))}', vals))
      .toBe("K10ab12::node:tok");
    expect(ev('${lookup(jsondecode(data.local_command.c.stdout), "missing", "")}', vals)).toBe("");
    expect(ev('${sha256(join("\\n", ["a", "b"]))}')).toBe(createHash("sha256").update("a\nb").digest("hex"));
    expect(ev('${replace("it\'s", "\'", "\'\\\\\'\'")}')).toBe("it'\\''s");
    expect(ev('${jsonencode({"b" = 2, "a" = "x"})}')).toBe('{"a":"x","b":2}');
    expect(jsonencode({ z: [1, true, null], a: "q" })).toBe('{"a":"q","z":[1,true,null]}');
  });

  test("unknown values propagate", () => {
    expect(ev('${sha256(join("", [random_password.t.result]))}', { "random_password.t.result": UNKNOWN })).toBe(UNKNOWN);
    expect(evaluateDeep({ a: "x", b: "${random_password.t.result}" }, ctx({ "random_password.t.result": UNKNOWN }))).toEqual({ a: "x", b: UNKNOWN });
  });

  test("references are found for the dependency graph", () => {
    expect(references(parseTemplate('${sha256(join("", [random_password.a.result, data.local_command.b.stdout]))} ${self.input.host}')))
      .toEqual([["random_password", "a", "result"], ["data", "local_command", "b", "stdout"], ["self", "input", "host"]]);
  });

  test("anything outside the subset throws instead of passing silently", () => {
    expect(() => ev("%{ if true }x%{ endif }")).toThrow(/directives/);
    expect(() => ev("${a.b == 1 ? 2 : 3}", { "a.b": 1 })).toThrow(/operators/);
    expect(() => ev("${upper(\"x\")}")).toThrow(/upper\(\) is not supported/);
    expect(() => ev("${[for x in [1] : x]}")).toThrow(/for expressions/);
    expect(() => ev("${var.x}")).toThrow();
    expect(() => ev("${SUDO_UID:-0}")).toThrow();
  });
});
