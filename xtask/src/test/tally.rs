//! The closing line's counts, read from `cargo test`'s stdout: every test binary prints
//! `running N tests` first and `test result: ... P passed; F failed; ...` last, unless it dies
//! on the way (a crash, an abort, a harness that exits early). Such a binary's tests count as
//! failed: a run whose closing line reads greener than it was is worse than no line at all.

/// Tests over all binaries of one `cargo test` run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    /// Binaries that started but never printed their result line.
    pub died: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.died += other.died;
    }

    /// `tests: 412 passed, 3 failed` (and the binaries that died without a result, if any).
    pub fn line(&self) -> String {
        let mut s = format!("tests: {} passed, {} failed", self.passed, self.failed);
        if self.died > 0 {
            s += &format!(
                " ({} test binar{} died before reporting; {} counted as failed)",
                self.died,
                if self.died == 1 { "y" } else { "ies" },
                if self.died == 1 {
                    "its tests are"
                } else {
                    "their tests are"
                }
            );
        }
        s
    }
}

/// Counts from `cargo test` output.
pub fn parse(output: &str) -> Tally {
    let mut t = Tally::default();
    // Tests announced by the binary that is running and has not reported yet.
    let mut open: Option<u64> = None;
    for line in output.lines() {
        if let Some(n) = announced(line) {
            t.add(died(open.take()));
            open = Some(n);
        } else if line.starts_with("test result:") {
            open = None;
            t.passed += number_before(line, "passed");
            t.failed += number_before(line, "failed");
        }
    }
    t.add(died(open));
    t
}

/// A binary that announced `n` tests and never reported: all of them failed (at least one, so a
/// binary that died before announcing anything real still shows).
fn died(open: Option<u64>) -> Tally {
    match open {
        Some(n) => Tally {
            passed: 0,
            failed: n.max(1),
            died: 1,
        },
        None => Tally::default(),
    }
}

/// `running 12 tests` / `running 1 test` → 12 / 1.
fn announced(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("running ")?;
    let (n, word) = rest.split_once(' ')?;
    matches!(word, "test" | "tests").then(|| n.parse().ok())?
}

/// In `test result: ok. 13 passed; 0 failed; ...`, the number before `word`.
fn number_before(line: &str, word: &str) -> u64 {
    line.split(';')
        .find(|part| part.trim_end().ends_with(word))
        .and_then(|part| part.split_whitespace().rev().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_passing_binaries() {
        let out = "\nrunning 13 tests\n.............\n\
                   test result: ok. 13 passed; 0 failed; 0 ignored; 0 measured\n\n\
                   running 1 test\n.\ntest result: ok. 1 passed; 0 failed; 0 ignored\n";
        let t = parse(out);
        assert_eq!(
            t,
            Tally {
                passed: 14,
                failed: 0,
                died: 0
            }
        );
        assert_eq!(t.line(), "tests: 14 passed, 0 failed");
    }

    /// What `cargo test --no-fail-fast` printed on stdout for three binaries: one with a failing
    /// test, one that aborted mid-run (no result line), one fine; then an empty doc-test run.
    #[test]
    fn counts_a_failing_and_a_dead_binary() {
        let out = "\nrunning 1 test\n.\n\
            test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n\n\
            running 2 tests\n. 1/2\nbad --- FAILED\n\nfailures:\n\n---- bad stdout ----\n\n\
            thread 'bad' (18511) panicked at tests/a.rs:2:20:\nx\n\nfailures:\n    bad\n\n\
            test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.11s\n\n\n\
            running 2 tests\n\n\
            running 1 test\n.\n\
            test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n\n\
            running 0 tests\n\n\
            test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
        let t = parse(out);
        assert_eq!(
            t,
            Tally {
                passed: 3,
                failed: 3,
                died: 1
            }
        );
        assert_eq!(
            t.line(),
            "tests: 3 passed, 3 failed (1 test binary died before reporting; its tests are \
             counted as failed)"
        );
    }

    #[test]
    fn a_binary_dying_last_is_counted() {
        let t = parse("running 5 tests\n....\n");
        assert_eq!(
            t,
            Tally {
                passed: 0,
                failed: 5,
                died: 1
            }
        );
    }

    #[test]
    fn test_names_that_look_like_headers_are_not() {
        // libtest-mimic prints `test running 3 ... ok` lines; only line starts count.
        let t = parse(
            "running 1 test\ntest running 3 tests ... ok\ntest result: ok. 1 passed; 0 failed\n",
        );
        assert_eq!(
            t,
            Tally {
                passed: 1,
                failed: 0,
                died: 0
            }
        );
    }
}
