/**
 * Who the client is, behind reverse proxies: the TCP peer, unless the peer is a trusted proxy
 * (PROXY_TRUSTED_PROXIES), in which case the address it reports in `Forwarded` (RFC 7239 `for=`) or
 * else `X-Forwarded-For`: walking the hops from the right, the first that is not itself trusted.
 * Pure, and cheap enough to work out where it is needed (the rate limiter and the logs in `Routes.ts`,
 * the headers sent to the origin in `Signaling.ts`) rather than provide it as a service per request.
 *
 * @since 0.1.0
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { BlockList, isIP } from "node:net"

/** The trusted proxies: addresses and CIDR ranges, IPv4 and IPv6. */
export interface TrustedProxies {
  /** As configured, for messages. */
  readonly entries: ReadonlyArray<string>
  readonly has: (address: string) => boolean
}

/** `1.2.3.4`, not `::ffff:1.2.3.4`: the form of an IPv4 client on a dual-stack socket. */
export const normalize = (address: string): string => address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "")

export const noTrustedProxies: TrustedProxies = { entries: [], has: () => false }

/** Parses `10.0.0.0/8, 192.0.2.7, fd00::/8`; the error names the entry that is neither. */
export const parseTrustedProxies = (text: string): Either.Either<TrustedProxies, string> => {
  const entries = text.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "")
  if (entries.length === 0) return Either.right(noTrustedProxies)
  const list = new BlockList()
  for (const entry of entries) {
    const [address, bits, extra] = entry.split("/")
    const family = isIP(address!)
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN
    if (family === 0 || extra !== undefined || !(prefix >= 0 && prefix <= (family === 6 ? 128 : 32))) {
      return Either.left(`expected IP addresses or CIDR ranges separated by commas, got ${JSON.stringify(entry)}`)
    }
    list.addSubnet(normalize(address!), prefix, family === 6 ? "ipv6" : "ipv4")
  }
  return Either.right({
    entries,
    has: (address) => {
      const ip = normalize(address)
      const family = isIP(ip)
      return family !== 0 && list.check(ip, family === 6 ? "ipv6" : "ipv4")
    }
  })
}

/** One hop's address as a header writes it (`1.2.3.4:80`, `[::1]:80`, `"[::1]"`); undefined when it is no IP. */
export const hopAddress = (text: string): string | undefined => {
  let value = text.trim()
  if (value.startsWith("\"") && value.endsWith("\"") && value.length >= 2) value = value.slice(1, -1)
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(value)
  if (bracketed !== null) value = bracketed[1]!
  else if (/^[\d.]+:\d+$/.test(value)) value = value.slice(0, value.lastIndexOf(":"))
  return isIP(value) === 0 ? undefined : normalize(value)
}

/** The `for=` of each element of a `Forwarded` header, in order (an element without one is skipped). */
export const forwardedFor = (header: string): Array<string> =>
  header.split(",").flatMap((element) => {
    for (const pair of element.split(";")) {
      const eq = pair.indexOf("=")
      if (eq !== -1 && pair.slice(0, eq).trim().toLowerCase() === "for") return [pair.slice(eq + 1).trim()]
    }
    return []
  })

/** The client of one request. */
export interface ClientAddressShape {
  /** The client's IP: for rate limits, logs and X-Real-IP. */
  readonly address: string
  /** The TCP peer. */
  readonly peer: string
  /** The hops for the X-Forwarded-For sent on to the origin, the peer last. */
  readonly chain: ReadonlyArray<string>
}

/**
 * The client, from the peer and the request's headers. A trusted peer's `Forwarded` is read (else
 * its `X-Forwarded-For`); hops are walked from the right and the first untrusted one is the client.
 * A hop that is no IP address (`unknown`, an obfuscated name) stops the walk: the client is then the
 * last trusted hop, which vouched for nothing further. When every hop is trusted, the left-most is the client.
 * An untrusted peer is the client, whatever it sent; its X-Forwarded-For is still passed on (before
 * the peer), as any hop would, but never believed here.
 */
export const resolve = (options: {
  readonly peer: string
  readonly forwarded: string | undefined
  readonly xForwardedFor: string | undefined
  readonly trusted: TrustedProxies
}): ClientAddressShape => {
  const peer = normalize(options.peer)
  const xff = options.xForwardedFor === undefined ? [] : options.xForwardedFor.split(",").map((hop) => hop.trim()).filter((hop) => hop !== "")
  if (!options.trusted.has(peer)) return { address: peer, peer, chain: [...xff, peer] }
  const forwarded = options.forwarded === undefined ? [] : forwardedFor(options.forwarded)
  const hops = forwarded.length > 0 ? forwarded : xff
  let address = peer
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hopAddress(hops[i]!)
    if (hop === undefined) break
    address = hop
    if (!options.trusted.has(hop)) break
  }
  const chain = hops.map((hop) => hopAddress(hop) ?? hop.replace(/^"|"$/g, ""))
  return { address, peer, chain: [...chain, peer] }
}

/** The client of a request: `resolve` with its peer and headers. */
export const ofRequest = (request: HttpServerRequest.HttpServerRequest, trusted: TrustedProxies): ClientAddressShape =>
  resolve({
    peer: Option.getOrElse(request.remoteAddress, () => "unknown"),
    forwarded: request.headers["forwarded"],
    xForwardedFor: request.headers["x-forwarded-for"],
    trusted
  })
