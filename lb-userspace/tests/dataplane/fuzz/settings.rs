//! Settings from the environment, and each case's own randomness.
use anyhow::{Context as _, Result, bail};
use rand::{SeedableRng, rngs::SmallRng};

use super::{CASE_ENV, DEFAULT_ITERATIONS, DEFAULT_SEED, ITERATIONS_ENV, KEEP_GOING_ENV, SEED_ENV};

#[derive(Clone, Copy)]
pub(super) struct Settings {
    pub(super) seed: u64,
    pub(super) iterations: u64,
    /// Replay only this case.
    only_case: Option<u64>,
    /// Asked for explicitly (`cargo xtask fuzz`, a replay): print a summary.
    pub(super) verbose: bool,
    /// Collect failures by kind instead of stopping at the first (see [`Failures`]).
    pub(super) keep_going: bool,
}

impl Settings {
    pub(super) fn from_env() -> Result<Settings> {
        let var = |name: &str| -> Result<Option<u64>> {
            match std::env::var(name) {
                Ok(s) => parse_u64(&s)
                    .map(Some)
                    .with_context(|| format!("{name}={s:?}")),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(e) => bail!("{name}: {e}"),
            }
        };
        let seed = var(SEED_ENV)?;
        let iterations = var(ITERATIONS_ENV)?;
        let only_case = var(CASE_ENV)?;
        Ok(Settings {
            seed: seed.unwrap_or(DEFAULT_SEED),
            iterations: iterations.unwrap_or(DEFAULT_ITERATIONS),
            only_case,
            verbose: seed.is_some() || iterations.is_some() || only_case.is_some(),
            keep_going: std::env::var_os(KEEP_GOING_ENV).is_some_and(|v| v != "0"),
        })
    }

    pub(super) fn cases(&self, iterations: u64) -> std::ops::Range<u64> {
        match self.only_case {
            Some(c) => c..c + 1,
            None => 0..iterations,
        }
    }
}

fn parse_u64(s: &str) -> Result<u64> {
    let s = s.trim().replace('_', "");
    Ok(
        match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16)?,
            None => s.parse()?,
        },
    )
}

/// The generator of case `index`: a function of the seed and the index only, so any case can be
/// regenerated without running the ones before it.
pub(super) fn case_rng(seed: u64, index: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
