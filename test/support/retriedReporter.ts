/**
 * A vitest reporter beside the default one: a test that passed only on its retry (CI) gets the
 * failure of its first attempt printed, which the default reporter leaves out, so a flaky test can be
 * traced from the CI log.
 */
import type { Reporter, TestCase } from "vitest/node"

export default class RetriedReporter implements Reporter {
  onTestCaseResult(test: TestCase) {
    const result = test.result()
    const diagnostic = test.diagnostic()
    if (result.state !== "passed" || diagnostic === undefined || diagnostic.retryCount === 0) return
    for (const error of result.errors ?? []) {
      console.log(
        `\nPASSED ON RETRY ${diagnostic.retryCount}: ${test.module.moduleId} > ${test.fullName}\n` +
          `first attempt failed: ${error.message}\n${error.stack ?? ""}\n`
      )
    }
  }
}
