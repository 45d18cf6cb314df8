// `node --import ./test/support/nameModules.mjs …` writes `resolved <url>` on stderr for every module
// the process resolves, ESM and CommonJS alike. Where Node has synchronous in-thread hooks
// (`registerHooks`, Node 22.15+ and 24) they are used: on Node 24 the asynchronous hooks of
// `register` (run on the loader thread) see only the entry's own resolution.
import * as module from "node:module"

if (typeof module.registerHooks === "function") {
  module.registerHooks({
    resolve(specifier, context, next) {
      const found = next(specifier, context)
      process.stderr.write("resolved " + found.url + "\n")
      return found
    }
  })
} else {
  const hook = `export async function resolve(specifier, context, next) {
  const found = await next(specifier, context)
  process.stderr.write("resolved " + found.url + "\\n")
  return found
}`
  module.register("data:text/javascript," + encodeURIComponent(hook))
}
