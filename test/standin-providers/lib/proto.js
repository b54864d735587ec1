// @ts-check
/**
 * gRPC service definitions for the stand-ins, from our .proto files. Parsing .proto text needs the
 * full protobufjs and costs ~30-70 ms per provider process (Terraform starts 2-10 per command), so
 * the test harness (test/harness/terraform-env.ts) converts them to protobufjs JSON once per test run
 * and passes the file in STANDIN_PROVIDER_PROTO_JSON; each process then loads only
 * protobufjs/light. Without it (a provider started by hand) the .proto files are parsed here.
 */
const { readFileSync } = require("fs");
const { join } = require("path");

const PROTO_DIR = join(__dirname, "..", "proto");
const PROTO_FILES = ["tfplugin6.proto", "plugin.proto"].map((f) => join(PROTO_DIR, f));

// The shape handlers see: field names as in the .proto, 64-bit integers as numbers, enums by name.
const TO_OBJECT = { longs: Number, enums: String, defaults: false, oneofs: true };

/** protobufjs JSON for our .proto files (needs the full protobufjs: used once per test run). */
function protoJson() {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const protobuf = require("protobufjs");
  return new protobuf.Root().loadSync(PROTO_FILES, { keepCase: true }).toJSON();
}

/** Service definitions for grpc-js, by full service name. @returns {Record<string, any>} */
function services() {
  const file = process.env.STANDIN_PROVIDER_PROTO_JSON;
  const protobuf = file ? require("protobufjs/light") : require("protobufjs");
  const root = file
    ? protobuf.Root.fromJSON(JSON.parse(readFileSync(file, "utf8")))
    : new protobuf.Root().loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  /** @type {Record<string, any>} */
  const out = {};
  for (const name of ["tfplugin6.Provider", "plugin.GRPCController"]) {
    const svc = root.lookupService(name);
    /** @type {Record<string, any>} */
    const def = {};
    for (const m of svc.methodsArray) {
      const Req = m.resolvedRequestType;
      const Res = m.resolvedResponseType;
      def[m.name] = {
        path: `/${name}/${m.name}`,
        requestStream: false,
        responseStream: false,
        requestSerialize: (/** @type {any} */ o) => Buffer.from(Req.encode(Req.fromObject(o)).finish()),
        requestDeserialize: (/** @type {Buffer} */ b) => Req.toObject(Req.decode(b), TO_OBJECT),
        responseSerialize: (/** @type {any} */ o) => Buffer.from(Res.encode(Res.fromObject(o)).finish()),
        responseDeserialize: (/** @type {Buffer} */ b) => Res.toObject(Res.decode(b), TO_OBJECT),
        originalName: m.name,
      };
    }
    out[name] = def;
  }
  return out;
}

module.exports = { protoJson, services };
