/**
 * What the benchmark reads about its processes from Linux's /proc: CPU time, resident memory, open
 * file descriptors and, per process, the datagrams the kernel dropped at its UDP sockets' receive
 * buffers (the column `drops` of /proc/net/udp, attributed through the socket inodes in
 * /proc/<pid>/fd). Everything returns undefined/zero off Linux instead of throwing.
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync } from "node:fs"
import { performance } from "node:perf_hooks"

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every mainstream Linux build. */
const CLOCK_TICKS_PER_SECOND = 100

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8")
  } catch {
    return undefined
  }
}

/** utime + stime of a process in milliseconds (10 ms resolution). */
export const cpuMillis = (pid: number): number | undefined => {
  const stat = readText(`/proc/${pid}/stat`)
  if (stat === undefined) return undefined
  // The command name (field 2) may hold spaces and parentheses: fields after it start past the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND
}

/** VmRSS in bytes. */
export const rssBytes = (pid: number): number | undefined => {
  const status = readText(`/proc/${pid}/status`)
  const match = status === undefined ? null : /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  return match === null ? undefined : Number(match[1]) * 1024
}

export interface FdCounts {
  readonly total: number
  readonly udp: number
  readonly tcp: number
  readonly otherSockets: number
}

/** Socket inodes of every open fd of a process. */
const socketInodes = (pid: number): { total: number; inodes: Array<string> } => {
  let entries: Array<string>
  try {
    entries = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return { total: 0, inodes: [] }
  }
  const inodes: Array<string> = []
  for (const entry of entries) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${entry}`))
      if (match !== null) inodes.push(match[1]!)
    } catch {
      // closed meanwhile
    }
  }
  return { total: entries.length, inodes }
}

interface SocketRow {
  readonly inode: string
  readonly localPort: number
  readonly drops: number
}

/** Rows of /proc/net/{udp,udp6,tcp,tcp6}: inode (column 10) and, for UDP, drops (column 13). */
const socketTable = (name: "udp" | "tcp"): Map<string, SocketRow> => {
  const rows = new Map<string, SocketRow>()
  for (const file of [`/proc/net/${name}`, `/proc/net/${name}6`]) {
    const text = readText(file)
    if (text === undefined) continue
    for (const line of text.split("\n").slice(1)) {
      const columns = line.trim().split(/\s+/)
      if (columns.length < 10) continue
      const inode = columns[9]!
      const localPort = parseInt(columns[1]!.split(":")[1] ?? "0", 16)
      rows.set(inode, { inode, localPort, drops: name === "udp" ? Number(columns[12] ?? 0) || 0 : 0 })
    }
  }
  return rows
}

/** Open fds of a process, with its sockets split by protocol. */
export const fdCounts = (pid: number): FdCounts => {
  const { inodes, total } = socketInodes(pid)
  const udp = socketTable("udp")
  const tcp = socketTable("tcp")
  let udpCount = 0
  let tcpCount = 0
  for (const inode of inodes) {
    if (udp.has(inode)) udpCount++
    else if (tcp.has(inode)) tcpCount++
  }
  return { total, udp: udpCount, tcp: tcpCount, otherSockets: inodes.length - udpCount - tcpCount }
}

/**
 * Datagrams the kernel dropped at the receive buffers of the UDP sockets each process holds now,
 * summed per process (a socket's counter starts at its creation, so diff two readings of the same
 * sockets; a socket closed in between takes its count with it).
 */
export const udpDrops = (
  pids: Record<string, number>,
  /** Per process, its shared (listening) port: its drops are also given as `<name>:shared`, the rest as `<name>:sessions`. */
  sharedPorts: Record<string, number> = {}
): Record<string, number> => {
  const table = socketTable("udp")
  const result: Record<string, number> = {}
  for (const [name, pid] of Object.entries(pids)) {
    let drops = 0
    let shared = 0
    for (const inode of socketInodes(pid).inodes) {
      const row = table.get(inode)
      if (row === undefined) continue
      drops += row.drops
      if (row.localPort === sharedPorts[name]) shared += row.drops
    }
    result[name] = drops
    if (sharedPorts[name] !== undefined) {
      result[`${name}:shared`] = shared
      result[`${name}:sessions`] = drops - shared
    }
  }
  return result
}

/** System-wide UDP counters from /proc/net/snmp (RcvbufErrors, SndbufErrors, InErrors, NoPorts). */
export const udpSnmp = (): Record<string, number> => {
  const text = readText("/proc/net/snmp")
  if (text === undefined) return {}
  const lines = text.split("\n").filter((line) => line.startsWith("Udp:"))
  if (lines.length < 2) return {}
  const names = lines[0]!.split(/\s+/).slice(1)
  const values = lines[1]!.split(/\s+/).slice(1).map(Number)
  return Object.fromEntries(names.map((name, i) => [name, values[i] ?? 0]))
}

/** b - a, key by key. */
export const diff = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.keys(b).map((key) => [key, (b[key] ?? 0) - (a[key] ?? 0)]))

export interface SystemCpu {
  /** user + nice + system over all cores, ms. */
  readonly busyMillis: number
  /** Interrupt and softirq time (loopback delivery runs in softirq), ms. */
  readonly irqMillis: number
  readonly stealMillis: number
}

/** Machine-wide CPU time from the first line of /proc/stat. */
export const systemCpu = (): SystemCpu | undefined => {
  const line = readText("/proc/stat")?.split("\n")[0]
  if (line === undefined || !line.startsWith("cpu ")) return undefined
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
  const ms = (ticks: number | undefined) => ((ticks ?? 0) * 1000) / CLOCK_TICKS_PER_SECOND
  return { busyMillis: ms(user) + ms(nice) + ms(system), irqMillis: ms(irq) + ms(softirq), stealMillis: ms(steal) }
}

/**
 * Watches the CPU time of the benchmark's own processes against the whole machine's, to tell how much
 * of the cores something else (another test run, say) took meanwhile.
 */
export const cpuWatch = (pids: Record<string, number>) => {
  const started = performance.now()
  const system = systemCpu()
  const own = Object.fromEntries(Object.entries(pids).map(([who, pid]) => [who, cpuMillis(pid) ?? 0]))
  return () => {
    const seconds = (performance.now() - started) / 1000
    const now = systemCpu()
    const perProcess: Record<string, number> = {}
    let ours = 0
    for (const [who, pid] of Object.entries(pids)) {
      const used = (cpuMillis(pid) ?? own[who]!) - own[who]!
      perProcess[who] = used / 1000 / seconds
      ours += used
    }
    const busy = system === undefined || now === undefined ? undefined : now.busyMillis - system.busyMillis
    return {
      seconds,
      /** Cores used by each of our processes. */
      cores: perProcess,
      /** Cores used by every other process (user+system time not ours). */
      foreignCores: busy === undefined ? undefined : Math.max(0, busy - ours) / 1000 / seconds,
      irqCores: system === undefined || now === undefined ? undefined : (now.irqMillis - system.irqMillis) / 1000 / seconds
    }
  }
}

export interface GcSummary {
  readonly count: number
  /** Mark-Compact / Mark-Sweep (full) collections. */
  readonly major: number
  readonly totalPauseMillis: number
  readonly maxPauseMillis: number
}

/**
 * Follows the `--trace-gc` lines a process writes to its log file: each call returns a summary of the
 * collections logged since the previous call (the main-thread pause of each, as V8 prints it).
 */
export const gcFollower = (logFile: string) => {
  let offset = 0
  return (): GcSummary => {
    let text = ""
    try {
      const size = statSync(logFile).size
      if (size > offset) {
        const buffer = Buffer.alloc(size - offset)
        const fd = openSync(logFile, "r")
        try {
          readSync(fd, buffer, 0, buffer.length, offset)
        } finally {
          closeSync(fd)
        }
        // Up to the last complete line; the rest is read next time.
        const end = buffer.lastIndexOf(10) + 1
        text = buffer.subarray(0, end).toString("utf8")
        offset += end
      }
    } catch {
      // no log (yet)
    }
    let count = 0
    let major = 0
    let total = 0
    let max = 0
    for (const match of text.matchAll(/\d+ ms: (Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Compact|Mark-Compact \(reduce\))[^\n]*? MB, ([\d.]+) \/ [\d.]+ ms/g)) {
      const pause = Number(match[2])
      count++
      if (match[1]!.startsWith("Mark")) major++
      total += pause
      max = Math.max(max, pause)
    }
    return { count, major, totalPauseMillis: total, maxPauseMillis: max }
  }
}

export interface ThreadTimes {
  readonly tid: number
  /** Time on a CPU, ms. */
  readonly cpuMs: number
  /** Of which in user space and in the kernel (utime and stime: 10 ms ticks). */
  readonly userMs: number
  readonly systemMs: number
  /** Times the thread gave up the CPU to wait (an event loop blocking in epoll_wait, a futex). */
  readonly voluntarySwitches: number
  /** Times the scheduler took the CPU from it. */
  readonly involuntarySwitches: number
}

/** Every thread of a process (/proc/<pid>/task): CPU time and context switches so far. */
export const threadTimes = (pid: number): Array<ThreadTimes> => {
  let tids: Array<string>
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return []
  }
  const threads: Array<ThreadTimes> = []
  for (const tid of tids) {
    const stat = readText(`/proc/${pid}/task/${tid}/stat`)
    const status = readText(`/proc/${pid}/task/${tid}/status`)
    if (stat === undefined || status === undefined) continue
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // schedstat's run time is in ns; utime+stime, in 10 ms ticks, where the kernel keeps no schedstat.
    const runNanos = Number(readText(`/proc/${pid}/task/${tid}/schedstat`)?.split(" ")[0])
    const userMs = (Number(fields[11]) * 1000) / CLOCK_TICKS_PER_SECOND
    const systemMs = (Number(fields[12]) * 1000) / CLOCK_TICKS_PER_SECOND
    const switches = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0)
    threads.push({
      tid: Number(tid),
      cpuMs: Number.isFinite(runNanos) ? runNanos / 1e6 : userMs + systemMs,
      userMs,
      systemMs,
      voluntarySwitches: switches("voluntary_ctxt_switches"),
      involuntarySwitches: switches("nonvoluntary_ctxt_switches")
    })
  }
  return threads
}

/** What each thread did between two readings (a thread born in between counts from zero). */
export const threadsDiff = (before: ReadonlyArray<ThreadTimes>, after: ReadonlyArray<ThreadTimes>): Array<ThreadTimes> =>
  after.map((thread) => {
    const was = before.find((b) => b.tid === thread.tid)
    return {
      tid: thread.tid,
      cpuMs: thread.cpuMs - (was?.cpuMs ?? 0),
      userMs: thread.userMs - (was?.userMs ?? 0),
      systemMs: thread.systemMs - (was?.systemMs ?? 0),
      voluntarySwitches: thread.voluntarySwitches - (was?.voluntarySwitches ?? 0),
      involuntarySwitches: thread.involuntarySwitches - (was?.involuntarySwitches ?? 0)
    }
  })
