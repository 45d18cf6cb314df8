/**
 * The way back to a client: a socket of the shared UDP port (which sends to the client's address), or
 * an ICE-TCP connection (which frames what it sends and ignores the address). The router keeps one
 * per client address and sends every reply by it.
 *
 * @since 0.2.0
 */
import { endpoint } from "./UdpSocket.js"

export interface ClientPath {
  send(msg: Buffer, port: number, address: string): void
  /**
   * Called when no session routes through this path for its client any more (session ended, consent
   * lost, address taken by another session): an ICE-TCP connection then closes. UDP sockets have none.
   */
  readonly released?: (() => void) | undefined
}

/**
 * The router keys clients by address and port; ICE-TCP clients get an address of their own, so that a
 * TCP connection never shares a key with a UDP client that has the same address and port number.
 */
export const tcpClientAddress = (address: string): string => `tcp:${address}`

/** A client as logs and the admin view show it: `198.51.100.7:50000`, `[2001:db8::7]:50000`, `tcp:198.51.100.7:50000`. */
export const describeClient = (address: string, port: number): string =>
  address.startsWith("tcp:") ? `tcp:${endpoint(address.slice(4), port)}` : endpoint(address, port)
