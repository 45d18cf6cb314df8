// `node --import ./test/support/nameModules.mjs …` writes `resolved <url>` on stderr for every module
// the process resolves, ESM and CommonJS alike (the hook runs on Node's loader thread).
import { register } from "node:module"

const hook = `export async function resolve(specifier, context, next) {
  const found = await next(specifier, context)
  process.stderr.write("resolved " + found.url + "\\n")
  return found
}`
register("data:text/javascript," + encodeURIComponent(hook))
