/**
 * CPU per STUN message the relay re-signs for a session whose ICE restart the proxy carried out:
 * a client's check (parse, verify with the proxy's password, re-sign for the origin) and the origin's
 * response (re-signed for the client), against parsing alone, which every binding request costs.
 * `npx tsx bench/iceTranslation.ts [--messages 200000] [--rounds 5]`; prints the median round.
 */
import { parseArgs } from "node:util"
import { encodeBindingRequest, encodeBindingSuccess, parseStun, type StunMessage } from "../src/Stun.js"
import * as IceTranslation from "../src/Udp/IceTranslation.js"
import { ufragPair } from "../src/Domain/Session.js"
import { SessionId } from "../src/Domain/Session.js"
import { OriginId } from "../src/Domain/Origin.js"
import { StreamKey } from "../src/Domain/StreamUrl.js"
import { verifyMessageIntegrity } from "../src/Stun.js"

const { values: args } = parseArgs({
  options: { messages: { type: "string", default: "200000" }, rounds: { type: "string", default: "5" } }
})
const messages = Number(args.messages)
const rounds = Number(args.rounds)

const MINTED = "proxyMintedPassword01234"
const translation = IceTranslation.fromRecord({
  id: SessionId.make("bench"),
  kind: "publish",
  streamUrl: StreamKey.make("__defaultVhost__/live/bench"),
  originId: OriginId.make("bench"),
  originLocation: undefined,
  ufragPair: ufragPair("srvMint1", "cliNew"),
  serverPwd: MINTED,
  originMedia: { host: "127.0.0.1", port: 8000 },
  createdAt: 0,
  ice: {
    clientPwd: "clientNewPassword0123456",
    etag: "\"bench\"",
    lite: true,
    origin: { ufragPair: ufragPair("srvOld", "cliOld"), serverPwd: "originPassword0123456789", clientPwd: "clientOldPassword0123456" }
  }
})!
const check = encodeBindingRequest({ username: "srvMint1:cliNew", password: MINTED, priority: 1853817087, iceControlling: 1n, useCandidate: true })
const response = encodeBindingSuccess({ transactionId: check.subarray(8, 20), address: "127.0.0.1", port: 40000, password: "originPassword0123456789" })

const perMessage = (work: () => void): number => {
  const started = process.hrtime.bigint()
  for (let i = 0; i < messages; i++) work()
  return Number(process.hrtime.bigint() - started) / messages / 1000
}
const median = (values: Array<number>) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const cases: Record<string, () => void> = {
  "parse only (every binding request)": () => void parseStun(check),
  "client check: parse, verify, re-sign for the origin": () => {
    const message = parseStun(check) as StunMessage
    verifyMessageIntegrity(check, message, MINTED)
    IceTranslation.checkToOrigin(translation, check, message)
  },
  "origin response: parse, re-sign for the client": () => void IceTranslation.responseToClient(response, MINTED)
}
const results: Record<string, Array<number>> = {}
for (let round = 0; round < rounds; round++) {
  for (const [name, work] of Object.entries(cases)) (results[name] ??= []).push(perMessage(work))
}
console.log(`Node ${process.version}, ${messages} messages x ${rounds} rounds, median µs per message:`)
for (const [name, values] of Object.entries(results)) console.log(`  ${name}: ${median(values).toFixed(2)}`)
