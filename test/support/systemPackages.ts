/**
 * Tests that need a system package (chromium, redis-server, openssl) run when it is installed, say so loudly
 * and skip when it is not, and fail under CI (CI=true), where .ci/run installs it.
 */
import { existsSync } from "node:fs"
import { execFileSync } from "node:child_process"

const onPath = (command: string): string | undefined => {
  try {
    return execFileSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
}

/** The path of a system binary, or undefined (with a loud warning) when it is missing outside CI. */
export const systemBinary = (command: string, debianPackage: string, preferred?: string): string | undefined => {
  const found = preferred !== undefined && existsSync(preferred) ? preferred : onPath(command)
  if (found !== undefined) return found
  const message = `${command} is not installed: the tests that need it are SKIPPED. ` +
    `Install it with: apt-get install -y --no-install-recommends ${debianPackage}`
  if (process.env["CI"] === "true") throw new Error(`${message} (CI=true: .ci/run must install it)`)
  console.warn(`\n*** ${message} ***\n`)
  return undefined
}
