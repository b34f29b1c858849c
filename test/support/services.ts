/**
 * The local servers some tests need (PostgreSQL, Redis). Where one is missing, its tests skip,
 * saying why, unless `EBB_REQUIRE_SERVICES` or `CI` is set (as `.ci/run` does): then they fail,
 * so that a CI run can never pass with a database it did not test against.
 */
import { describe, it } from 'vitest';

/** True when a missing server must fail its tests instead of skipping them. */
export const servicesRequired = Boolean(process.env.EBB_REQUIRE_SERVICES || process.env.CI);

/**
 * `describe` for a suite that needs a server: `problem` is null when the server answers, else why
 * it cannot be used. A missing server skips the suite, or, when servers are required, replaces it
 * with one failing test that names the problem.
 */
export function describeWithService(name: string, problem: string | null, file: string, body: () => void): void {
  if (problem === null) {
    describe(name, body);
  } else if (servicesRequired) {
    describe(name, () => {
      it('has its server', () => {
        throw new Error(`${file}: ${problem}; start it (.ci/run does) or unset EBB_REQUIRE_SERVICES and CI to skip these tests`);
      });
    });
  } else {
    console.warn(`${file}: skipping "${name}" (${problem}); with EBB_REQUIRE_SERVICES or CI set they fail instead`);
    describe.skip(name, body);
  }
}
