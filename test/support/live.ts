/**
 * Tests with the code under test's logs below Error hidden (RTC_PROXY_TEST_LOGS=1 shows them all):
 * `live` on the real clock, for real sockets and processes; `scoped` on the TestClock, for time logic
 * driven by `TestClock.adjust`.
 */
import { it } from "@effect/vitest"
import type * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"

const level = process.env["RTC_PROXY_TEST_LOGS"] ? LogLevel.Debug : LogLevel.Error

type Body = () => Effect.Effect<void, unknown, Scope.Scope>

/** it.scopedLive without the info and warning logs. */
export const live = (name: string, body: Body, timeout?: number) =>
  it.scopedLive(name, () => body().pipe(Logger.withMinimumLogLevel(level)), timeout)

/** it.scoped (TestClock) without the info and warning logs. */
export const scoped = (name: string, body: Body, timeout?: number) =>
  it.scoped(name, () => body().pipe(Logger.withMinimumLogLevel(level)), timeout)
