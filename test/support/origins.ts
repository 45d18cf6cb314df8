/**
 * Origins as the load balancers hold them, for tests.
 */
import * as Schema from "effect/Schema"
import { Origin } from "../../src/Domain/Origin.js"

let counter = 0
/** A registered origin as a heartbeat makes it; unique per call. */
export const heartbeatOrigin = (overrides: Partial<typeof Origin.Encoded> = {}): Origin => {
  const n = ++counter
  return Schema.decodeSync(Origin)({
    id: `srv-${n}-svc-${n}-${4000 + n}`,
    ip: "127.0.0.1",
    deviceId: `origin-${n}`,
    server: `srv-${n}`,
    service: `svc-${n}`,
    pid: String(4000 + n),
    apiPort: 19850 + n,
    rtc: [{ protocol: "udp", host: undefined, port: 8000 + n }],
    fixed: false,
    ...overrides
  })
}
