// Reads a GGUF file with @huggingface/gguf (an independent parser) and prints its metadata,
// tensor infos and data offset as JSON. Usage: node gguf_read.mjs FILE NPM_PREFIX
import { createRequire } from "node:module";

const [file, prefix] = process.argv.slice(2);
const require = createRequire(prefix + "/noop.js");
const { gguf } = require("@huggingface/gguf");

const { metadata, tensorInfos, tensorDataOffset } = await gguf(file, { allowLocalFile: true });
const out = {
  metadata,
  tensorDataOffset,
  tensorInfos: tensorInfos.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, offset: t.offset })),
};
process.stdout.write(JSON.stringify(out, (_, v) => (typeof v === "bigint" ? Number(v) : v)));
