/**
 * ICE servers advertised to WHIP/WHEP clients (RFC 9725 section 4.6): one `Link: <url>;
 * rel="ice-server"` per STUN or TURN URL. TURN URLs get short-lived credentials in coturn's REST
 * scheme (`static-auth-secret`): the username is the expiry time in seconds, and the credential is
 * the base64 HMAC-SHA1 of the username under the shared secret, so no long-lived TURN password ever
 * reaches a browser. Pure apart from the clock it is given.
 *
 * @since 0.1.0
 */
import { createHmac } from "node:crypto"

/** `stun:`, `stuns:`, `turn:` or `turns:` URLs (RFC 7064, RFC 7065). */
export const isIceServerUrl = (url: string): boolean => /^(stuns?|turns?):[^\s<>"]+$/i.test(url)

const isTurn = (url: string) => /^turns?:/i.test(url)

/** coturn's REST credentials for a username that expires at `expiresAt` (seconds since the epoch). */
export const turnCredentials = (secret: string, expiresAt: number, user = "rtc-proxy") => {
  const username = `${expiresAt}:${user}`
  return { username, credential: createHmac("sha1", secret).update(username).digest("base64") }
}

const quoted = (value: string) => `"${value.replace(/["\\]/g, "\\$&")}"`

/**
 * The Link header value for `urls`, or undefined when there are none. TURN URLs carry credentials
 * valid until `nowMillis + ttlMillis` when a secret is given (without one a TURN URL goes out bare:
 * the TURN server must then allow it without credentials).
 */
export const linkHeader = (
  urls: ReadonlyArray<string>,
  options: { readonly turnSecret: string | undefined; readonly nowMillis: number; readonly ttlMillis: number }
): string | undefined => {
  if (urls.length === 0) return undefined
  const credentials = options.turnSecret === undefined
    ? undefined
    : turnCredentials(options.turnSecret, Math.floor((options.nowMillis + options.ttlMillis) / 1000))
  return urls.map((url) => {
    const link = `<${url}>; rel="ice-server"`
    if (!isTurn(url) || credentials === undefined) return link
    return `${link}; username=${quoted(credentials.username)}; credential=${quoted(credentials.credential)}; ` +
      `credential-type="password"`
  }).join(", ")
}

/** Two Link header values as one (the origin's ICE servers and the proxy's). */
export const joinLinks = (first: string | undefined, second: string | undefined): string | undefined =>
  first === undefined || first === "" ? second : second === undefined ? first : `${first}, ${second}`
