//! The bench-only entry points (the `bench` feature): a [`Dataplane`] loaded from the bench object
//! ([`Dataplane::load_bench`]) has them beside `sheave_lb`, loaded on demand, so that they run
//! over the same maps: `sheave_lb_bench` (lb-ebpf's `bench.rs`) times the production packet
//! function in a loop; `sheave_flow_floor` (`floor.rs`) does only the flow table's part of it.
use anyhow::{Context as _, Result, anyhow};
use aya::{
    maps::{Array, PerCpuArray},
    programs::Xdp,
};
use lb_common::bench::{BenchConfig, BenchResult};

use super::{Dataplane, LoadOptions, objects};

pub const BENCH_PROGRAM: &str = "sheave_lb_bench";
pub const FLOOR_PROGRAM: &str = "sheave_flow_floor";

impl Dataplane {
    /// [`Dataplane::load`] from the bench object ([`objects::LB_BENCH`]): the same `sheave_lb` and
    /// maps, plus the bench-only entry points and their maps.
    pub fn load_bench(opts: LoadOptions) -> Result<Dataplane> {
        Dataplane::load_with(objects::LB_BENCH, opts, &[])
    }

    /// The in-program timing entry point, verified and loaded on first use.
    pub fn bench_program(&mut self) -> Result<&mut Xdp> {
        self.extra_program(BENCH_PROGRAM)
    }

    /// The flow-table-only entry point, verified and loaded on first use.
    pub fn floor_program(&mut self) -> Result<&mut Xdp> {
        self.extra_program(FLOOR_PROGRAM)
    }

    fn extra_program(&mut self, name: &str) -> Result<&mut Xdp> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("{name} missing from the object"))?
            .try_into()
            .map_err(|e| anyhow!("{name} is not an XDP program: {e}"))?;
        if prog.fd().is_err() {
            prog.load()
                .with_context(|| format!("the kernel refused {name}"))?;
        }
        Ok(prog)
    }

    pub fn set_bench(&mut self, cfg: &BenchConfig) -> Result<()> {
        let map = self
            .ebpf
            .map_mut("BENCH_CONFIG")
            .context("BENCH_CONFIG missing")?;
        let mut arr: Array<_, BenchConfig> = Array::try_from(map)?;
        arr.set(0, cfg, 0)?;
        Ok(())
    }

    /// The result summed over CPUs since the last call (which resets it).
    pub fn take_bench_result(&mut self) -> Result<BenchResult> {
        let map = self
            .ebpf
            .map_mut("BENCH_RESULT")
            .context("BENCH_RESULT missing")?;
        let mut arr: PerCpuArray<_, BenchResult> = PerCpuArray::try_from(map)?;
        let per_cpu = arr.get(&0, 0)?;
        let mut sum = BenchResult::default();
        for r in per_cpu.iter() {
            sum.ns += r.ns;
            sum.ops += r.ops;
            sum.failed += r.failed;
        }
        let zeros = aya::maps::PerCpuValues::try_from(vec![BenchResult::default(); per_cpu.len()])?;
        arr.set(0, zeros, 0)?;
        Ok(sum)
    }
}
