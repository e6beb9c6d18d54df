// Minified and gzipped size of the live client (hadir-client.js with the
// hadir-queue.js module it imports), as a browser would load it.
// Uses esbuild (devDependency) when installed; otherwise a crude
// comment/whitespace strip, reported as such.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const entry = fileURLToPath(new URL("../../app/static/hadir-client.js", import.meta.url));

async function minified() {
  try {
    const esbuild = await import("esbuild");
    const out = await esbuild.build({
      entryPoints: [entry], bundle: true, minify: true, format: "esm",
      target: "es2022", write: false, logLevel: "silent",
    });
    return { tool: `esbuild ${esbuild.version} --bundle --minify`, code: out.outputFiles[0].text };
  } catch {
    const files = ["hadir-queue.js", "hadir-client.js"].map((f) =>
      readFileSync(fileURLToPath(new URL(`../../app/static/${f}`, import.meta.url)), "utf8"));
    const code = files.join("\n")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "")
      .replace(/\n\s+/g, "\n")
      .replace(/\n+/g, "\n");
    return { tool: "crude strip (esbuild not installed)", code };
  }
}

const raw = ["hadir-queue.js", "hadir-client.js"]
  .map((f) => readFileSync(fileURLToPath(new URL(`../../app/static/${f}`, import.meta.url))).length)
  .reduce((a, b) => a + b, 0);
const { tool, code } = await minified();
const min = Buffer.byteLength(code);
const gz = gzipSync(code, { level: 9 }).length;
console.log(`source ${raw} B, minified ${min} B, minified+gzip ${gz} B (${tool})`);
