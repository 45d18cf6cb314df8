/**
 * How `npm start` runs the proxy, so that the benchmarks measure the same process users run.
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"

/**
 * The node flags of package.json's `start` script, which must read `[exec] node <flags> dist/main.js`
 * (`exec`: the shell npm runs the script in becomes node, so npm's SIGTERM reaches the proxy). The
 * benchmarks run the compiled proxy with them; the soak run, src/main.ts under tsx.
 */
export const npmStartNodeFlags = (root: string): Array<string> => {
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }
  const words = String(pkg.scripts.start).trim().split(/\s+/)
  if (words[0] === "exec") words.shift()
  if (words[0] !== "node" || words[words.length - 1] !== "dist/main.js") {
    throw new Error(`package.json's start script is not "[exec] node <flags> dist/main.js": ${pkg.scripts.start}`)
  }
  return words.slice(1, -1)
}
