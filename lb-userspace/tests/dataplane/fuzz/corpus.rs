//! The corpus (`lb-userspace/tests/fuzz-corpus/`): kept inputs, as hex files, and the trial
//! that runs every seed and corpus file as-is through both programs.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail, ensure};
use lb_userspace::testkit::{decap::Decap, lb::Ingress};

use super::{
    ETH_HLEN,
    check::LbChecker,
    decap::DecapModel,
    model::Model,
    report::ingress_name,
    seeds::{Seed, seeds},
};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus")
}

/// Every `*.hex` file of the corpus, sorted by name.
pub(super) fn load_corpus() -> Result<Vec<Seed>> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    files.retain(|p| p.extension().is_some_and(|x| x == "hex"));
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)?;
            let bytes = parse_hex(&text).with_context(|| format!("{}", p.display()))?;
            ensure!(
                bytes.len() >= ETH_HLEN,
                "{}: {} bytes, less than an Ethernet header",
                p.display(),
                bytes.len()
            );
            let name = format!("corpus {}", p.file_name().unwrap().to_string_lossy());
            Ok(Seed { name, bytes })
        })
        .collect()
}

/// Hex digits; whitespace ignored; a line starting with `#` is a comment.
fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    ensure!(
        digits.len().is_multiple_of(2),
        "an odd number of hex digits"
    );
    digits
        .chunks(2)
        .map(|d| {
            let s = std::str::from_utf8(d)?;
            u8::from_str_radix(s, 16).with_context(|| format!("{s:?} is not a hex byte"))
        })
        .collect()
}

/// Every seed and corpus file as-is: through the load balancer from both ingress interfaces, and
/// through the decap program. Reports every failing input, not only the first.
pub(super) fn run_corpus(fx0: u32) -> Result<()> {
    let mut checker = LbChecker::new(fx0)?;
    let model = Model::new()?;
    let decap_model = DecapModel {
        vips: model.addresses.clone(),
    };
    let mut decap = Decap::new(&decap_model.vips)?;
    let (mut runs, mut errors) = (0, Vec::new());
    for seed in seeds(&model)? {
        for ingress in [Ingress::Lo, Ingress::Fx0] {
            if let Err(e) = checker.check(&seed.bytes, ingress) {
                errors.push(format!(
                    "`{}` through the load balancer from {}: {e:#}",
                    seed.name,
                    ingress_name(ingress)
                ));
            }
            runs += 1;
        }
        let result = decap
            .run(&seed.bytes)
            .and_then(|(action, out)| decap_model.check(&seed.bytes, action, &out));
        if let Err(e) = result {
            errors.push(format!("`{}` through decap: {e:#}", seed.name));
        }
        runs += 1;
    }
    ensure!(runs > 150, "only {runs} corpus runs");
    if !errors.is_empty() {
        bail!(
            "{} of {runs} corpus runs failed:\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    Ok(())
}
