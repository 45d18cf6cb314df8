/**
 * A real redis-server (Debian's package) for tests: started on a free port on 127.0.0.1 without
 * persistence, stopped by its pid. `REDIS_SERVER` is undefined (and the tests skip, loudly) when it
 * is not installed; under CI=true that is a failure.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import type { ProxyConfigShape } from "../../src/Config.js"
import { freeTcpPort } from "./process.ts"
import { systemBinary } from "./systemPackages.ts"

export const REDIS_SERVER = systemBinary("redis-server", "redis-server")

export interface RedisServer {
  readonly port: number
  readonly pid: number
  /** The proxy's Redis settings for this server, with an optional key prefix. */
  readonly config: (keyPrefix?: string) => ProxyConfigShape["redis"]
  /** Kills the server at once (SIGKILL), as a crash would; the scope's release then does nothing. */
  readonly kill: Effect.Effect<void>
  /** Runs a command with a fresh connection (RESP over a plain socket, no client library). */
  readonly command: (...args: ReadonlyArray<string>) => Effect.Effect<unknown>
}

const encode = (args: ReadonlyArray<string>) =>
  `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join("")}`

/** Parses one RESP reply from the start of `buf`: the value and where it ends, or undefined if incomplete. */
const parseReply = (buf: Buffer, at = 0): { value: unknown; end: number } | undefined => {
  const lineEnd = buf.indexOf("\r\n", at)
  if (lineEnd < 0) return undefined
  const type = String.fromCharCode(buf[at]!)
  const line = buf.toString("utf8", at + 1, lineEnd)
  switch (type) {
    case "+":
      return { value: line, end: lineEnd + 2 }
    case "-":
      return { value: new Error(line), end: lineEnd + 2 }
    case ":":
      return { value: Number(line), end: lineEnd + 2 }
    case "$": {
      const length = Number(line)
      if (length < 0) return { value: null, end: lineEnd + 2 }
      if (buf.length < lineEnd + 2 + length + 2) return undefined
      return { value: buf.toString("utf8", lineEnd + 2, lineEnd + 2 + length), end: lineEnd + 2 + length + 2 }
    }
    case "*": {
      const count = Number(line)
      if (count < 0) return { value: null, end: lineEnd + 2 }
      const items: Array<unknown> = []
      let end = lineEnd + 2
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, end)
        if (item === undefined) return undefined
        items.push(item.value)
        end = item.end
      }
      return { value: items, end }
    }
    default:
      return { value: new Error(`unexpected RESP reply ${JSON.stringify(buf.toString())}`), end: buf.length }
  }
}

/** One command on a fresh connection to 127.0.0.1:port; a Redis error reply fails the effect. */
export const redisCommand = (port: number, args: ReadonlyArray<string>): Effect.Effect<unknown, Error> =>
  Effect.async<unknown, Error>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    let buf = Buffer.alloc(0)
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      const reply = parseReply(buf)
      if (reply === undefined) return
      socket.destroy()
      resume(reply.value instanceof Error ? Effect.fail(reply.value) : Effect.succeed(reply.value))
    })
    socket.write(encode(args))
    return Effect.sync(() => socket.destroy())
  })

const waitForExit = (child: ChildProcess, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true)
    const timer = setTimeout(() => resolve(false), ms)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve(true)
    })
  })

const stop = (child: ChildProcess, signal: NodeJS.Signals) =>
  Effect.promise(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    process.kill(child.pid!, signal)
    if (!(await waitForExit(child, 3000))) {
      process.kill(child.pid!, "SIGKILL")
      await waitForExit(child, 3000)
    }
  })

/** Starts redis-server in the current scope (needs `REDIS_SERVER`), on a free port unless given one. */
export const redisServer = (options: { readonly port?: number } = {}): Effect.Effect<RedisServer, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const binary = REDIS_SERVER
    if (binary === undefined) return yield* Effect.fail(new Error("redis-server is not installed"))
    const port = options.port ?? (yield* Effect.promise(freeTcpPort))
    let output = ""
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(binary, [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--save",
          "",
          "--appendonly",
          "no",
          "--daemonize",
          "no"
        ], { stdio: ["ignore", "pipe", "pipe"] })
        child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
        child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
        return child
      }),
      (child) => stop(child, "SIGTERM")
    )
    // Ready when it answers PING.
    const deadline = Date.now() + 5000
    while (true) {
      const pong = yield* Effect.option(redisCommand(port, ["PING"]))
      if (Option.isSome(pong) && pong.value === "PONG") break
      if (Date.now() > deadline || child.exitCode !== null) {
        return yield* Effect.fail(new Error(`redis-server did not start on port ${port}: ${output}`))
      }
      yield* Effect.sleep(20)
    }
    return {
      port,
      pid: child.pid!,
      config: (keyPrefix = "") => ({ host: "127.0.0.1", port, password: Option.none(), db: 0, keyPrefix }),
      kill: stop(child, "SIGKILL"),
      command: (...args) => Effect.orDie(redisCommand(port, args))
    }
  })

/** The file's redis-server as a service, for `layer(TestRedis.layer, { excludeTestServices: true })`. */
export class TestRedis extends Context.Tag("test/RedisServer")<TestRedis, RedisServer>() {
  static readonly layer = Layer.scoped(TestRedis, redisServer())
}
