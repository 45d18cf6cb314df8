/**
 * The SDP the proxy reads and rewrites: ICE credentials, candidates, and the two rewrites on the way
 * through (the client's candidates out of the offer, the proxy's address into the answer). Line based
 * and byte-exact: a line the proxy does not change leaves exactly as it came, line endings included.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"

/** ICE short-term credentials of one side (`a=ice-ufrag`, `a=ice-pwd`). */
export interface IceCredentials {
  readonly ufrag: string
  readonly pwd: string
}

/** An `a=candidate` line, split into the fields the proxy uses (RFC 8839 section 5.1). */
export interface Candidate {
  readonly foundation: string
  readonly component: number
  readonly transport: string
  readonly priority: number
  readonly address: string
  readonly port: number
  readonly type: string
}

/** Why an offer cannot be forwarded. */
export type OfferProblem =
  | "empty"
  | "not-sdp"
  | "no-media"
  | "no-ice-ufrag"
  | "no-ice-pwd"
  | "bad-ice-ufrag"
  | "bad-ice-pwd"
  | "binary"

/** A validated offer and what the proxy needs from it. */
export interface Offer {
  readonly credentials: IceCredentials
  /** The offer as it goes to the origin: `stripCandidates` of it. */
  readonly forOrigin: string
}

const lineEnding = (sdp: string): string => (sdp.includes("\r\n") ? "\r\n" : "\n")

/** Splits into lines; a trailing line ending yields no empty last line. */
const splitLines = (sdp: string, eol: string): Array<string> => {
  const lines = sdp.split(eol)
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop()
  return lines
}

const joinLines = (lines: ReadonlyArray<string>, eol: string, trailing: boolean): string =>
  lines.join(eol) + (trailing && lines.length > 0 ? eol : "")

const attributeValue = (line: string, name: string): string | undefined =>
  line.startsWith(`a=${name}:`) ? line.slice(name.length + 3).trim() : undefined

// RFC 8839: ice-char = ALPHA / DIGIT / "+" / "/". The ufrag never holds ':', which keeps the pair key sound.
const ICE_CHARS = /^[A-Za-z0-9+/]{1,256}$/

/**
 * The first `a=ice-ufrag` and `a=ice-pwd` of the description, whether session-level or in the first
 * media section (with BUNDLE every section shares one pair).
 */
export const iceCredentials = (sdp: string): Partial<IceCredentials> => credentialsOf(splitLines(sdp, lineEnding(sdp)))

const credentialsOf = (lines: ReadonlyArray<string>): Partial<IceCredentials> => {
  let ufrag: string | undefined
  let pwd: string | undefined
  for (const line of lines) {
    ufrag ??= attributeValue(line, "ice-ufrag")
    pwd ??= attributeValue(line, "ice-pwd")
    if (ufrag !== undefined && pwd !== undefined) break
  }
  return { ...(ufrag === undefined ? {} : { ufrag }), ...(pwd === undefined ? {} : { pwd }) }
}

/** Whether a body can be SDP text: control characters other than CR, LF and TAB never occur in it. */
export const isText = (sdp: string): boolean => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(sdp)

/** Whether a description starts with `v=0`, after any white space (as an answer must). */
export const startsWithVersion = (sdp: string): boolean => {
  const start = sdp.search(/\S/)
  return start !== -1 && sdp.startsWith("v=0", start)
}

/** Checks that a body is an SDP offer the proxy can forward, and returns its ICE credentials. */
export const validateOffer = (sdp: string): Either.Either<Offer, OfferProblem> => {
  // Where the text starts after white space (what trimStart would cut), without copying a large body.
  const start = sdp.search(/\S/)
  if (start === -1) return Either.left("empty")
  if (!isText(sdp)) return Either.left("binary")
  if (!sdp.startsWith("v=0", start)) return Either.left("not-sdp")
  // One split serves the checks, the credentials and the copy for the origin.
  const eol = lineEnding(sdp)
  const lines = splitLines(sdp, eol)
  if (!lines.some((line) => line.startsWith("m="))) return Either.left("no-media")
  return Either.map(
    validateCredentials(credentialsOf(lines)),
    (credentials): Offer => ({ credentials, forOrigin: withoutCandidates(sdp, lines, eol) })
  )
}

const validateCredentials = (found: Partial<IceCredentials>): Either.Either<IceCredentials, OfferProblem> => {
  if (found.ufrag === undefined) return Either.left("no-ice-ufrag")
  if (found.pwd === undefined) return Either.left("no-ice-pwd")
  if (!ICE_CHARS.test(found.ufrag)) return Either.left("bad-ice-ufrag")
  if (!ICE_CHARS.test(found.pwd)) return Either.left("bad-ice-pwd")
  return Either.right({ ufrag: found.ufrag, pwd: found.pwd })
}

/** The answer's credentials, held to the same rules as an offer's. */
export const answerCredentials = (sdp: string): Either.Either<IceCredentials, OfferProblem> =>
  validateCredentials(iceCredentials(sdp))

const DIGITS = /^\d{1,10}$/

/** Parses an `a=candidate:` line; `undefined` when it is not one or is malformed. */
export const parseCandidate = (line: string): Candidate | undefined => {
  if (!line.startsWith("a=candidate:")) return undefined
  const fields = line.slice("a=candidate:".length).trim().split(/\s+/)
  if (fields.length < 8 || fields[6] !== "typ") return undefined
  // Plain decimal digits only: Number() alone would take "0x1F40", "1e3" or "+80".
  if (!DIGITS.test(fields[1]!) || !DIGITS.test(fields[3]!) || !DIGITS.test(fields[5]!)) return undefined
  const component = Number(fields[1])
  const priority = Number(fields[3])
  const port = Number(fields[5])
  if (port > 65535 || priority > 0xffffffff) return undefined
  return {
    foundation: fields[0]!,
    component,
    transport: fields[2]!.toLowerCase(),
    priority,
    address: fields[4]!,
    port,
    type: fields[7]!
  }
}

/** Every parseable candidate of a description, in order. */
export const candidates = (sdp: string): Array<Candidate> => candidatesOf(splitLines(sdp, lineEnding(sdp)))

const candidatesOf = (lines: ReadonlyArray<string>): Array<Candidate> => {
  const found: Array<Candidate> = []
  for (const line of lines) {
    const candidate = parseCandidate(line)
    if (candidate !== undefined) found.push(candidate)
  }
  return found
}

const isCandidateLine = (line: string): boolean =>
  line.startsWith("a=candidate:") || line === "a=end-of-candidates"

/**
 * The offer as it goes to the origin: without the client's candidates and `a=end-of-candidates`.
 * A full-ICE origin would otherwise check the client's addresses directly (media bypassing the proxy),
 * or give up before the relayed checks arrive. Without them it learns the proxy's relay socket as a
 * peer-reflexive candidate from the first check.
 */
export const stripCandidates = (sdp: string): string => {
  const eol = lineEnding(sdp)
  return withoutCandidates(sdp, splitLines(sdp, eol), eol)
}

const withoutCandidates = (sdp: string, lines: ReadonlyArray<string>, eol: string): string => {
  const kept = lines.filter((line) => !isCandidateLine(line))
  return kept.length === lines.length ? sdp : joinLines(kept, eol, sdp.endsWith(eol))
}

/** Where the proxy receives media: written into every candidate of an answer. */
export interface PublicAddress {
  readonly ip: string
  readonly port: number
  /** Further addresses of the proxy (a PROXY_CANDIDATE_IP list, e.g. an IPv6 one beside IPv4): one candidate each too. */
  readonly moreIps?: ReadonlyArray<string> | undefined
  /** The ICE-TCP port, when it is on: a passive TCP candidate per address as well (RFC 6544), below the UDP ones. */
  readonly tcpPort?: number | undefined
}

const DEFAULT_FOUNDATION = "0"
const DEFAULT_PRIORITY = 2130706431

const connectionLine = (ip: string): string => `c=IN ${ip.includes(":") ? "IP6" : "IP4"} ${ip}`

/**
 * RFC 8445 section 5.1.2.1 with RFC 6544 section 4.2: a host TCP candidate's type preference is 90 (as
 * libwebrtc's), its local preference 2^13 * 4 (passive) + a per-address one, so UDP stays preferred.
 */
const tcpPriority = (addressIndex: number, component: number): number =>
  90 * 2 ** 24 + (4 * 2 ** 13 + 8191 - addressIndex) * 2 ** 8 + (256 - component)

/**
 * The proxy's candidates for one media section: UDP per address and component (the first address
 * keeps the origin's foundation and priority, each further one a local preference lower), then
 * passive TCP ones when `tcpPort` is given, each below every UDP candidate.
 */
const proxyCandidates = (
  address: PublicAddress,
  components: ReadonlyArray<number>,
  template: Candidate | undefined,
  generation = " generation 0"
) => {
  const ips = [address.ip, ...(address.moreIps ?? [])]
  const udpPriority = template?.priority ?? DEFAULT_PRIORITY
  const lowestUdp = Math.max(0, udpPriority - (ips.length - 1) * 256)
  const lines: Array<string> = []
  ips.forEach((ip, i) => {
    for (const component of components) {
      lines.push(`a=candidate:${i === 0 ? template?.foundation ?? DEFAULT_FOUNDATION : `udp${i}`} ${component} udp ${
        Math.max(0, udpPriority - i * 256)
      } ${ip} ${address.port} typ host${generation}`)
    }
  })
  if (address.tcpPort !== undefined) {
    ips.forEach((ip, i) => {
      for (const component of components) {
        const priority = Math.max(0, Math.min(tcpPriority(i, component), lowestUdp - 1 - i))
        lines.push(`a=candidate:tcp${i} ${component} tcp ${priority} ${ip} ${address.tcpPort} typ host tcptype passive${generation}`)
      }
    })
  }
  return lines
}

/**
 * The answer as it goes to the client: in every media section that is not rejected, the origin's
 * candidates are replaced by the proxy's: one UDP host candidate per address and component (at the
 * place of the first candidate, else at the end of the section), and with ICE-TCP on, one passive TCP
 * candidate per address and component after them. The origin's TCP, relay and reflexive candidates
 * go; `a=end-of-candidates` stays; a candidate outside any media section is dropped. A `c=` line that
 * named an address is pointed at the proxy's first address so the origin's address does not leak.
 */
export const rewriteAnswer = (sdp: string, address: PublicAddress): string => {
  const eol = lineEnding(sdp)
  const lines = splitLines(sdp, eol)
  const output: Array<string> = []
  let section: Array<string> = []
  let isMedia = false
  const rewriteConnection = (line: string): string =>
    line.startsWith("c=IN ") && !/ (0\.0\.0\.0|::)$/.test(line) ? connectionLine(address.ip) : line

  const flush = () => {
    if (!isMedia) {
      // Candidates belong to media sections; one before the first m= line would leak the origin's address.
      for (const line of section) if (!line.startsWith("a=candidate:")) output.push(rewriteConnection(line))
      return
    }
    // m=<media> <port>[/<count>] ...: port 0 rejects the section.
    const rejected = section[0]!.split(" ")[1]?.split("/")[0] === "0"
    const original = section.map(parseCandidate)
    const udp = original.filter((c): c is Candidate => c !== undefined && c.transport === "udp")
    const components = new Set(udp.map((c) => c.component))
    if (components.size === 0) components.add(1)
    const rewritten = rejected ? [] : proxyCandidates(address, [...components].sort((a, b) => a - b), udp[0])
  let inserted = false
    for (const line of section) {
      if (line.startsWith("a=candidate:")) {
        if (!inserted) output.push(...rewritten)
        inserted = true
      } else {
        output.push(rewriteConnection(line))
      }
    }
    if (!inserted) {
      // Before a=end-of-candidates if present, so that it stays last.
      const end = output.lastIndexOf("a=end-of-candidates")
      const sectionStart = output.length - section.length
      if (end >= sectionStart) output.splice(end, 0, ...rewritten)
      else output.push(...rewritten)
    }
  }

  for (const line of lines) {
    if (line.startsWith("m=")) {
      flush()
      section = []
      isMedia = true
    }
    section.push(line)
  }
  flush()
  return joinLines(output, eol, sdp.endsWith(eol))
}

/** The `a=ice-lite` and `a=ice-options` of a description: what a restart's fragment mirrors. */
export const iceAttributes = (sdp: string): IceAttributes => iceAttributesOf(splitLines(sdp, lineEnding(sdp)))

export interface IceAttributes {
  readonly lite: boolean
  readonly options: string | undefined
}

const iceAttributesOf = (lines: ReadonlyArray<string>): IceAttributes => {
  let lite = false
  let options: string | undefined
  for (const line of lines) {
    if (line.trimEnd() === "a=ice-lite") lite = true
    options ??= attributeValue(line, "ice-options")
  }
  return { lite, options }
}

/** What the proxy reads from an origin's answer, from one split of it. */
export interface AnswerFacts {
  /** As `answerCredentials`. */
  readonly credentials: Either.Either<IceCredentials, OfferProblem>
  /** As `candidates`. */
  readonly candidates: Array<Candidate>
  /** As `iceAttributes`. */
  readonly ice: IceAttributes
}

/** `answerCredentials`, `candidates` and `iceAttributes` of an answer at once. */
export const readAnswer = (sdp: string): AnswerFacts => {
  const lines = splitLines(sdp, lineEnding(sdp))
  return {
    credentials: validateCredentials(credentialsOf(lines)),
    candidates: candidatesOf(lines),
    ice: iceAttributesOf(lines)
  }
}

/** Whether a fragment's (or offer's) ICE credentials are valid ICE characters (RFC 8839). */
export const validCredentials = (credentials: Partial<IceCredentials>): credentials is IceCredentials =>
  credentials.ufrag !== undefined && credentials.pwd !== undefined && ICE_CHARS.test(credentials.ufrag) &&
  ICE_CHARS.test(credentials.pwd)

/**
 * The `application/trickle-ice-sdpfrag` (RFC 8840) answering an ICE restart the proxy carries out:
 * `a=ice-lite` and `a=ice-options` as the session's answer had them, the request's BUNDLE group, and
 * for each media section of the request (its m= line and mid) the new server credentials, the
 * proxy's candidates (the same set as an answer's: every address, and the passive TCP ones with
 * ICE-TCP on, so that a client on IPv6 or on ICE-TCP can follow) and `a=end-of-candidates`. A request without media sections gets the credentials
 * at session level. CRLF line endings.
 */
export const restartFragment = (options: {
  readonly request: string
  readonly credentials: IceCredentials
  readonly lite: boolean
  readonly iceOptions: string | undefined
  readonly address: PublicAddress
}): string => {
  const lines: Array<string> = []
  if (options.lite) lines.push("a=ice-lite")
  if (options.iceOptions !== undefined) lines.push(`a=ice-options:${options.iceOptions}`)
  const requestLines = splitLines(options.request, lineEnding(options.request))
  const group = requestLines.find((line) => line.startsWith("a=group:"))
  if (group !== undefined) lines.push(group)
  const credentials = [`a=ice-ufrag:${options.credentials.ufrag}`, `a=ice-pwd:${options.credentials.pwd}`]
  const sections = requestLines.flatMap((line, index) => line.startsWith("m=") ? [index] : [])
  if (sections.length === 0) lines.push(...credentials)
  sections.forEach((start, i) => {
    const end = sections[i + 1] ?? requestLines.length
    const mid = requestLines.slice(start, end).find((line) => line.startsWith("a=mid:"))
    lines.push(requestLines[start]!)
    if (mid !== undefined) lines.push(mid)
    lines.push(
      ...credentials,
      // No "generation 0": that extension counts ICE restarts, and this is a new generation.
      ...proxyCandidates(options.address, [1], undefined, ""),
      "a=end-of-candidates"
    )
  })
  return joinLines(lines, "\r\n", true)
}
