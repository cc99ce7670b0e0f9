// The CQL reference engine for bench/caregaps.py (run by it with NODE_PATH set to the
// packages it installed; not part of careloop).
//
//   node caregaps_reference.mjs translate CQL_DIR OUT_DIR QICORE_MODELINFO.xml
//     every library in CQL_DIR to ELM JSON with @cqframework/cql (the reference
//     translator's JavaScript build), models: System, FHIR 4.0.1 (from cql-exec-fhir),
//     QICore from the given file.
//   node caregaps_reference.mjs run NDJSON_DIR ELM_ROOT MEASURES_DIR YEAR ID,ID,...
//     each measure's ELM (ELM_ROOT/<ID>/) over the patients of a Bulk Data export with
//     cql-execution and cql-exec-fhir; value sets from MEASURES_DIR/<ID>/valuesets/;
//     prints one JSON line: per measure the seconds and the population counts.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), "x.js"));

const MODEL_INFOS = () => path.join(path.dirname(require.resolve("cql-exec-fhir")), "modelInfos");

async function translate(cqlDir, outDir, qicoreFile) {
  const { ModelManager, LibraryManager, CqlTranslator, CqlCompilerOptions, LibraryBuilder,
    createModelInfoProvider, createLibrarySourceProvider, createUcumService, stringAsSource } =
    await import(require.resolve("@cqframework/cql/cql-to-elm"));
  const { SystemModelInfoProvider } = await import(require.resolve("@cqframework/cql/cql"));
  const ucum = require("@lhncbc/ucum-lhc").UcumLhcUtils.getInstance();
  const models = {
    FHIR: fs.readFileSync(path.join(MODEL_INFOS(), "fhir-modelinfo-4.0.1.xml"), "utf8"),
    QICore: fs.readFileSync(qicoreFile, "utf8"),
  };
  const sources = {};
  for (const file of fs.readdirSync(cqlDir).filter((f) => f.endsWith(".cql"))) {
    const text = fs.readFileSync(path.join(cqlDir, file), "utf8");
    const name = /^\s*library\s+"?([A-Za-z0-9_]+)"?/m.exec(text)?.[1] ?? file.replace(/\.cql$/, "");
    sources[name] = text;
  }
  fs.mkdirSync(outDir, { recursive: true });
  for (const [name, text] of Object.entries(sources)) {
    const mm = new ModelManager();
    mm.modelInfoLoader.registerModelInfoProvider(new SystemModelInfoProvider());
    mm.modelInfoLoader.registerModelInfoProvider(
      createModelInfoProvider((id) => (models[id] ? stringAsSource(models[id]) : null)),
    );
    // The options CMS compiles its measures with.
    const options = CqlCompilerOptions.defaultOptions()
      .withOptions([CqlCompilerOptions.Options.EnableResultTypes])
      .withSignatureLevel(LibraryBuilder.SignatureLevel.All);
    const units = createUcumService(
      (value, from, to) => String(ucum.convertUnitTo(from, Number(value), to).toVal),
      (unit) => (ucum.validateUnitString(unit).status === "valid" ? null : `invalid unit ${unit}`),
      (a) => a,
      (a) => a,
    );
    const lm = new LibraryManager(mm, options, undefined, units);
    lm.librarySourceLoader.registerProvider(
      createLibrarySourceProvider((id) => (sources[id] ? stringAsSource(sources[id]) : null)),
    );
    const elm = JSON.parse(CqlTranslator.fromText(text, lm).toJson());
    const errors = (elm.library.annotation ?? []).filter((a) => a.errorSeverity === "error");
    if (errors.length) {
      throw new Error(`${name}: ${errors.slice(0, 3).map((e) => `L${e.startLine} ${e.message}`).join(" | ")}`);
    }
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(elm));
  }
}

function patientBundles(ndjsonDir) {
  // One Bundle per patient: the Patient and every resource whose subject, patient or
  // beneficiary names it.
  const byPatient = new Map();
  const add = (id, resource) => {
    if (!byPatient.has(id)) byPatient.set(id, []);
    byPatient.get(id).push({ resource });
  };
  for (const file of fs.readdirSync(ndjsonDir).filter((f) => f.endsWith(".ndjson"))) {
    for (const line of fs.readFileSync(path.join(ndjsonDir, file), "utf8").split("\n")) {
      if (!line.trim()) continue;
      const resource = JSON.parse(line);
      if (resource.resourceType === "Patient") {
        add(resource.id, resource);
        continue;
      }
      const ref = (resource.subject ?? resource.patient ?? resource.beneficiary)?.reference;
      if (ref && ref.startsWith("Patient/")) add(ref.slice(8), resource);
    }
  }
  return [...byPatient.values()]
    .filter((entries) => entries.some((e) => e.resource.resourceType === "Patient"))
    .map((entry) => ({ resourceType: "Bundle", type: "collection", entry }));
}

function valueSets(measureDir) {
  // Keyed by the canonical URL as the ELM names it (both schemes) and by the OID.
  const sets = {};
  const folder = path.join(measureDir, "valuesets");
  for (const file of fs.existsSync(folder) ? fs.readdirSync(folder) : []) {
    const vs = JSON.parse(fs.readFileSync(path.join(folder, file), "utf8"));
    const codes = [];
    const walk = (items) => {
      for (const c of items ?? []) {
        if (c.code) codes.push({ code: c.code, system: c.system, version: c.version });
        walk(c.contains);
      }
    };
    walk(vs.expansion?.contains);
    const oid = String(vs.url ?? vs.id).split("/").pop();
    for (const key of [oid, vs.url, String(vs.url).replace(/^https?:/, (s) => (s === "http:" ? "https:" : "http:"))]) {
      if (key) sets[key] = { [vs.version ?? ""]: codes };
    }
  }
  return sets;
}

async function run(ndjsonDir, elmRoot, measuresDir, year, ids) {
  const cql = require("cql-execution");
  const cqlfhir = require("cql-exec-fhir");
  const bundles = patientBundles(ndjsonDir);
  const y = Number(year);
  const period = new cql.Interval(
    new cql.DateTime(y, 1, 1, 0, 0, 0, 0, 0),
    new cql.DateTime(y, 12, 31, 23, 59, 59, 999, 0),
    true,
    true,
  );
  const out = { patients: bundles.length, measures: {} };
  for (const id of ids) {
    const measure = JSON.parse(fs.readFileSync(path.join(measuresDir, id, "measure.json"), "utf8"));
    const mainName = String(measure.library[0]).split("/").pop().split("|")[0];
    const libs = {};
    for (const file of fs.readdirSync(path.join(elmRoot, id)).filter((f) => f.endsWith(".json"))) {
      const elm = JSON.parse(fs.readFileSync(path.join(elmRoot, id, file), "utf8"));
      libs[elm.library.identifier.id] = elm;
    }
    const library = new cql.Library(libs[mainName], new cql.Repository(libs));
    const executor = new cql.Executor(
      library,
      new cql.CodeService(valueSets(path.join(measuresDir, id))),
      { "Measurement Period": period },
    );
    const source = cqlfhir.PatientSource.FHIRv401({ requireProfileTagging: false });
    source.loadBundles(bundles);
    const began = process.hrtime.bigint();
    const results = await executor.exec(source);
    const seconds = Number(process.hrtime.bigint() - began) / 1e9;
    const truthy = (v) => (Array.isArray(v) ? v.length > 0 : Boolean(v));
    // The proportion rules: each population only inside the one before it.
    const groups = (measure.group ?? []).map((group, index) => {
      const defines = {};
      for (const population of group.population ?? []) {
        defines[population.code.coding[0].code] = population.criteria.expression;
      }
      const counts = { group: index + 1 };
      const add = (name, yes) => {
        counts[name] = (counts[name] ?? 0) + (yes ? 1 : 0);
        return yes;
      };
      for (const r of Object.values(results.patientResults)) {
        const has = (code) => (defines[code] ? truthy(r[defines[code]]) : false);
        const ip = add("initial_population", has("initial-population"));
        const den = add("denominator", ip && (!defines.denominator || has("denominator")));
        const excl = add("denominator_exclusion", den && has("denominator-exclusion"));
        const num = add("numerator", den && !excl && has("numerator"));
        add("denominator_exception", den && !excl && !num && has("denominator-exception"));
      }
      return counts;
    });
    const g = groups[0] ?? {};
    const eligible = (g.denominator ?? 0) - (g.denominator_exclusion ?? 0) - (g.denominator_exception ?? 0);
    out.measures[id] = { seconds, groups, met_rate: eligible > 0 ? (g.numerator ?? 0) / eligible : null };
  }
  console.log(JSON.stringify(out));
}

const [command, ...rest] = process.argv.slice(2);
if (command === "translate") await translate(rest[0], rest[1], rest[2]);
else if (command === "run") await run(rest[0], rest[1], rest[2], rest[3], rest[4].split(","));
else {
  console.error("usage: caregaps_reference.mjs translate|run ...");
  process.exit(2);
}
