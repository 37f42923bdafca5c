// Checks Grafana dashboard JSON files against the dashboard schema Grafana publishes in the npm
// package @grafana/schema (scripts/grafana-schema-fetch), which ships it as TypeScript types
// only: each dashboard becomes an object literal typed `Dashboard` and Debian's tsc compiles it,
// so a missing required field, a field of the wrong type, an unknown field (TypeScript's excess
// property check) or a value outside an enum is an error that names the field and its line.
//
// Usage: node schema_check.js SCHEMA_PACKAGE_DIR TSC DASHBOARD.json...
// Exit code 0 when every dashboard conforms, 1 with tsc's diagnostics otherwise, 2 on bad usage.
//
// Two adaptations, both because of how the types are generated, not what the schema allows:
//  - TypeScript enums: JSON holds an enum's values ("value", "absolute"), which TypeScript does
//    not accept for an enum type, so each `declare enum` becomes the union of its values (with a
//    namespace of the same name, so `MappingType.ValueToText` still names one value).
//  - annotation queries: Grafana keeps a data source's own settings on the annotation itself
//    (Prometheus: expr, step, titleFormat, textFormat, tagKeys, useValueForTime), which the
//    generated AnnotationQuery does not list; those six are allowed next to its fields.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const TYPES = 'dist/types/raw/dashboard/x/types.gen.d.ts';
const RESERVED = new Set(['any', 'bigint', 'boolean', 'never', 'null', 'number', 'object',
                          'string', 'symbol', 'undefined', 'unknown', 'void']);

// `export declare enum Name { a = "x", b = 1 }` -> a union type and a namespace of member types.
function enumsToUnions(source) {
  return source.replace(/export declare enum (\w+) \{([^}]*)\}/g, (whole, name, body) => {
    const members = [];
    for (const line of body.split('\n')) {
      const m = line.match(/^\s*(\w+)\s*=\s*("[^"]*"|'[^']*'|-?\d+(?:\.\d+)?)\s*,?\s*$/);
      if (m) members.push([m[1], m[2]]);
    }
    if (members.length === 0) throw new Error(`enum ${name}: no members understood`);
    const values = members.map(([, v]) => v).join(' | ');
    // A member named like a built-in type (VariableRefresh.never) cannot be a type's name.
    const types = members.filter(([k]) => !RESERVED.has(k))
                      .map(([k, v]) => `  type ${k} = ${v};`)
                      .join('\n');
    return `export type ${name} = ${values};\nexport declare namespace ${name} {\n${types}\n}`;
  });
}

function main(argv) {
  if (argv.length < 3) {
    process.stderr.write('usage: node schema_check.js SCHEMA_PACKAGE_DIR TSC DASHBOARD.json...\n');
    return 2;
  }
  const [schemaDir, tsc, ...dashboards] = argv;
  const typesFile = path.join(schemaDir, TYPES);
  if (!fs.existsSync(typesFile)) {
    process.stderr.write(`${typesFile} is missing: run scripts/grafana-schema-fetch\n`);
    return 2;
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'grafana-schema-'));
  try {
    fs.writeFileSync(path.join(work, 'types.d.ts'),
                     enumsToUnions(fs.readFileSync(typesFile, 'utf8')));
    const files = [];
    dashboards.forEach((file, i) => {
      const json = fs.readFileSync(file, 'utf8');
      JSON.parse(json);  // a syntax error is said here, with the file's name
      const ts = path.join(work, `dashboard${i}.ts`);
      fs.writeFileSync(ts, [
        `// ${file}`,
        'import type { AnnotationQuery, Dashboard } from "./types";',
        'type PrometheusAnnotation = AnnotationQuery & {',
        '  expr: string; step?: string; titleFormat?: string; textFormat?: string;',
        '  tagKeys?: string; useValueForTime?: boolean;',
        '};',
        'type Checked = Omit<Dashboard, "annotations"> & {',
        '  annotations?: { list?: Array<AnnotationQuery | PrometheusAnnotation> };',
        '};',
        'export const dashboard: Checked = ' + json.trim() + ';',
        '',
      ].join('\n'));
      files.push([ts, file]);
    });
    const run = childProcess.spawnSync(
        tsc,
        ['--noEmit', '--strict', '--target', 'es2020', '--moduleResolution', 'node',
         ...files.map(([ts]) => ts)],
        {encoding: 'utf8', cwd: work});
    if (run.error) throw run.error;
    // tsc names the generated file and a line in it; the dashboard's own line is 9 less.
    let out = (run.stdout || '') + (run.stderr || '');
    for (const [ts, file] of files) {
      out = out.split(ts).join(file).split(path.basename(ts)).join(file);
      out = out.replace(new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '\\((\\d+),',
                                   'g'),
                        (m, line) => `${file}(${Number(line) - 9},`);
    }
    if (run.status !== 0) {
      process.stdout.write(out);
      return 1;
    }
    for (const [, file] of files) process.stdout.write(`${file}: conforms to the schema\n`);
    return 0;
  } finally {
    fs.rmSync(work, {recursive: true, force: true});
  }
}

process.exitCode = main(process.argv.slice(2));
