// @ts-check
/**
 * The plugin server every stand-in provider runs: go-plugin's handshake and AutoMTLS, Terraform's
 * plugin protocol 6 over gRPC, schemas and validation. Schema only: planning, applying, reading and
 * importing answer with the provider's `schemaOnly` reason, so each provider file holds only its
 * schemas (and validators).
 *
 * How Terraform starts a provider (hashicorp/go-plugin client.go and server.go, read, not copied):
 *  - env TF_PLUGIN_MAGIC_COOKIE must carry Terraform's cookie; PLUGIN_PROTOCOL_VERSIONS lists the
 *    protocol versions Terraform speaks ("5,6"); PLUGIN_CLIENT_CERT holds Terraform's client
 *    certificate (AutoMTLS).
 *  - the plugin answers with one line on stdout: core version 1 | protocol version | tcp |
 *    address | grpc | server certificate (DER, base64 *without padding*: go-plugin decodes it with
 *    RawStdEncoding).
 *  - Terraform trusts exactly that certificate and checks the name "localhost" against its SAN; the
 *    server requires Terraform's client certificate.
 *  - When done, Terraform calls plugin.GRPCController/Shutdown.
 */
const { readFileSync, mkdtempSync, rmSync } = require("fs");
const { execFileSync } = require("child_process");
const { tmpdir } = require("os");
const { join } = require("path");
const grpc = require("@grpc/grpc-js");
const { services } = require("./proto");
const { decodeBlockValue } = require("./values");

// Terraform's go-plugin handshake cookie (hashicorp/terraform internal/plugin6/serve.go, MagicCookieValue).
const MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/**
 * @typedef {import("./values").Block} Block
 * @typedef {import("./values").Attribute} Attribute
 * @typedef {{ severity: "ERROR"|"WARNING", summary: string, detail?: string, attribute?: any }} Diagnostic
 * @typedef {{ version?: number, schema: Block, validate?: (config: any) => Diagnostic[] }} ResourceType
 * @typedef {{ schema: Block, validate?: (config: any) => Diagnostic[] }} DataSourceType
 * @typedef {{
 *   name: string,
 *   providerSchema: Block,
 *   resources: Record<string, ResourceType>,
 *   dataSources: Record<string, DataSourceType>,
 *   validateConfig?: (config: any) => Diagnostic[],
 *   schemaOnly: string,
 * }} ProviderDef
 */

/** An error diagnostic, optionally on a top-level attribute. @returns {Diagnostic} */
function error(/** @type {string} */ summary, /** @type {string} */ detail = "", /** @type {string=} */ attr) {
  return { severity: "ERROR", summary, detail, ...(attr ? { attribute: { steps: [{ attribute_name: attr }] } } : {}) };
}

/** @param {Block} block */
function blockToProto(block) {
  return {
    version: 0,
    description: block.description ?? "",
    attributes: block.attributes.map((a) => ({
      name: a.name,
      type: Buffer.from(JSON.stringify(a.type)),
      description: a.description ?? "",
      required: !!a.required,
      optional: !!a.optional,
      computed: !!a.computed,
      sensitive: !!a.sensitive,
      deprecated: !!a.deprecated,
    })),
    block_types: (block.blocks ?? []).map((b) => ({
      type_name: b.typeName,
      nesting: b.nesting,
      min_items: b.minItems ?? 0,
      max_items: b.maxItems ?? 0,
      block: blockToProto(b.block),
    })),
  };
}

/** @param {Block} block @param {number} version */
function schemaToProto(block, version) {
  return { version, block: { ...blockToProto(block), version } };
}

/** @param {ProviderDef} def */
function makeHandlers(def) {
  const val = (/** @type {any} */ dv, /** @type {Block} */ block) => (dv && dv.msgpack && dv.msgpack.length ? decodeBlockValue(dv.msgpack, block) : null);
  /** @param {string} t */
  const resource = (t) => {
    const r = def.resources[t];
    if (!r) throw new Error(`stand-in ${def.name}: no resource type ${t}`);
    return r;
  };
  /** @param {string} t */
  const dataSource = (t) => {
    const d = def.dataSources[t];
    if (!d) throw new Error(`stand-in ${def.name}: no data source ${t}`);
    return d;
  };
  const schemaOnly = () => [error(`stand-in ${def.name} provider: schema only`, def.schemaOnly)];

  /** @type {Record<string, (req: any) => any>} */
  const h = {
    GetMetadata: () => ({
      server_capabilities: { plan_destroy: true, get_provider_schema_optional: true },
      diagnostics: [],
      resources: Object.keys(def.resources).map((type_name) => ({ type_name })),
      data_sources: Object.keys(def.dataSources).map((type_name) => ({ type_name })),
    }),

    GetProviderSchema: () => ({
      provider: schemaToProto(def.providerSchema, 0),
      resource_schemas: Object.fromEntries(Object.entries(def.resources).map(([k, r]) => [k, schemaToProto(r.schema, r.version ?? 0)])),
      data_source_schemas: Object.fromEntries(Object.entries(def.dataSources).map(([k, d]) => [k, schemaToProto(d.schema, 0)])),
      diagnostics: [],
      server_capabilities: { plan_destroy: true, get_provider_schema_optional: true },
    }),

    ValidateProviderConfig: (req) => ({ diagnostics: def.validateConfig ? def.validateConfig(val(req.config, def.providerSchema)) : [] }),

    ConfigureProvider: () => ({ diagnostics: [] }),

    ValidateResourceConfig: (req) => {
      const r = resource(req.type_name);
      return { diagnostics: r.validate ? r.validate(val(req.config, r.schema)) : [] };
    },

    ValidateDataResourceConfig: (req) => {
      const d = dataSource(req.type_name);
      return { diagnostics: d.validate ? d.validate(val(req.config, d.schema)) : [] };
    },

    // Schema only: anything that needs state or a real API answers with the provider's reason.
    UpgradeResourceState: () => ({ diagnostics: schemaOnly() }),
    ReadResource: () => ({ diagnostics: schemaOnly() }),
    PlanResourceChange: () => ({ diagnostics: schemaOnly() }),
    ApplyResourceChange: () => ({ diagnostics: schemaOnly() }),
    ImportResourceState: () => ({ diagnostics: schemaOnly() }),
    ReadDataSource: () => ({ diagnostics: schemaOnly() }),

    StopProvider: () => ({ Error: "" }),
  };
  return h;
}

/** The server key and certificate: pregenerated per test run, or made now (slower). */
function tlsMaterial() {
  const dir = process.env.STANDIN_PROVIDER_TLS_DIR;
  if (dir) return { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  const tmp = mkdtempSync(join(tmpdir(), "standin-tls-"));
  try {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", join(tmp, "key.pem"), "-out", join(tmp, "cert.pem"), "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost", "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
      "-addext", "extendedKeyUsage=serverAuth,clientAuth"], { stdio: "ignore" });
    return { key: readFileSync(join(tmp, "key.pem")), cert: readFileSync(join(tmp, "cert.pem")) };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** @param {Buffer} pem */
function derBase64Unpadded(pem) {
  const b64 = pem.toString("utf8").replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  return Buffer.from(b64, "base64").toString("base64").replace(/=+$/, "");
}

/** Start the provider. @param {ProviderDef} def */
function serve(def) {
  if (process.env.TF_PLUGIN_MAGIC_COOKIE !== MAGIC_COOKIE) {
    process.stderr.write(`This is the stand-in terraform-provider-${def.name} of cdktf-k3s-kilo's tests: a plugin that Terraform runs, not a program to run directly.\n`);
    process.exit(1);
  }
  const versions = (process.env.PLUGIN_PROTOCOL_VERSIONS ?? "").split(",");
  if (!versions.includes("6")) {
    process.stderr.write(`stand-in ${def.name}: Terraform offered plugin protocol versions ${versions.join(",")}; the stand-in speaks 6\n`);
    process.exit(1);
  }
  const clientCert = process.env.PLUGIN_CLIENT_CERT;
  if (!clientCert) {
    process.stderr.write(`stand-in ${def.name}: PLUGIN_CLIENT_CERT is not set (Terraform's AutoMTLS)\n`);
    process.exit(1);
  }

  const svc = services();

  const handlers = makeHandlers(def);
  const server = new grpc.Server();
  /** @type {Record<string, grpc.UntypedHandleCall>} */
  const impl = {};
  for (const [name, fn] of Object.entries(handlers)) {
    impl[name] = (/** @type {any} */ call, /** @type {any} */ cb) => {
      Promise.resolve().then(() => fn(call.request)).then((res) => cb(null, res), (e) => {
        const err = /** @type {Error} */ (e);
        process.stderr.write(`[ERROR] stand-in ${def.name} ${name}: ${err.stack}\n`);
        cb(null, { diagnostics: [error(`stand-in ${def.name}: ${name} failed`, err.message)] });
      });
    };
  }
  server.addService(svc["tfplugin6.Provider"], impl);
  server.addService(svc["plugin.GRPCController"], {
    Shutdown: (/** @type {any} */ _call, /** @type {any} */ cb) => {
      cb(null, {});
      setImmediate(() => server.tryShutdown(() => process.exit(0)));
      setTimeout(() => process.exit(0), 1000).unref();
    },
  });

  const { key, cert } = tlsMaterial();
  const creds = grpc.ServerCredentials.createSsl(Buffer.from(clientCert), [{ private_key: key, cert_chain: cert }], true);
  server.bindAsync("127.0.0.1:0", creds, (err, port) => {
    if (err) {
      process.stderr.write(`stand-in ${def.name}: cannot listen: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`1|6|tcp|127.0.0.1:${port}|grpc|${derBase64Unpadded(cert)}\n`);
  });

  // Terraform stops providers itself; Ctrl-C reaches the whole process group and is Terraform's to handle.
  process.on("SIGINT", () => {});
  // Never outlive Terraform (e.g. when it was killed): exit once re-parented.
  const parent = process.ppid;
  setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 1000).unref();
}

module.exports = { serve, error };
