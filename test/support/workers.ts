/**
 * The data-plane worker count the relay and proxy tests run with: 1 (no worker thread) unless
 * RTC_PROXY_TEST_WORKERS says otherwise; the `workers` vitest project runs them with 2.
 */
export const testWorkers = Number(process.env["RTC_PROXY_TEST_WORKERS"] ?? "1")

/** A describe title with the worker count, when the suite runs with workers. */
export const withWorkers = (title: string) => testWorkers === 1 ? title : `${title} [${testWorkers} workers]`
