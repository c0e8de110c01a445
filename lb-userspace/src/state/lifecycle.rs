//! A backend's life in a VIP: health (from the checkers), operator disable and drain, slow
//! start, and what each means for the ring and the data plane.
//!
//! Precedence, per member: `disabled` (operator, all VIPs), then `down` (checks failed), then
//! `draining` (operator drain, or a check saying "going away"), then `ejected` (outlier
//! detection), then `slow-start`, then `up`. Out of the ring: disabled, down, draining, ejected. Flows in the flow table are rescheduled for
//! disabled and down backends (the data plane's `BACKEND_F_DOWN`), kept for draining ones.
//! When every backend of a VIP is down, a VIP that fails open builds its ring from the down
//! backends (the set known last) and their flows stay put.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    time::{Duration, Instant, SystemTime},
};

use lb_common::{backend::BACKEND_F_DOWN, vip::VipKey};

use super::{ErrorKind, Member, State, StateError, VipState, err};
use crate::{
    config::{AllDown, resolve_check},
    health::{probe::Verdict, spec::CheckSpec, tracker::Start},
};

/// Ring weight of a member at full weight is `weight × RAMP_STEPS`, so slow start can ramp in
/// `RAMP_STEPS` steps without changing the shares of the others.
pub const RAMP_STEPS: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemberState {
    Up,
    SlowStart,
    /// Out of the ring by passive outlier detection, for a while (see `state::ejection`).
    Ejected,
    Draining,
    Down,
    Disabled,
}

impl MemberState {
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Up => "up",
            MemberState::SlowStart => "slow-start",
            MemberState::Ejected => "ejected",
            MemberState::Draining => "draining",
            MemberState::Down => "down",
            MemberState::Disabled => "disabled",
        }
    }

    pub const ALL: [MemberState; 6] = [
        MemberState::Up,
        MemberState::SlowStart,
        MemberState::Ejected,
        MemberState::Draining,
        MemberState::Down,
        MemberState::Disabled,
    ];
}

/// An operator drain in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drain {
    pub since: SystemTime,
    pub deadline: SystemTime,
}

impl Drain {
    pub fn starting(now: SystemTime, timeout: Duration) -> Drain {
        Drain {
            since: now,
            deadline: now + timeout,
        }
    }
}

pub enum DrainRequest {
    Start { timeout: Duration },
    Cancel,
}

/// What the checkers last said about one backend, per distinct check (a backend in several VIPs
/// may be checked differently by each).
#[derive(Clone, Debug, Default)]
pub struct BackendHealth {
    pub checks: HashMap<CheckSpec, CheckStatus>,
}

#[derive(Clone, Debug)]
pub struct CheckStatus {
    /// Settled verdict (after rise/fall).
    pub verdict: Verdict,
    /// Why it is in that verdict, e.g. "connect refused ×3".
    pub reason: String,
    pub since: Instant,
    /// Latest single check: detail and latency.
    pub last: Option<(String, Duration)>,
    /// No result has settled it yet: `verdict` is the check's `initial_state`.
    pub awaiting_first: bool,
}

impl CheckStatus {
    /// A check that has not answered yet (see [`crate::health::spec::InitialState`]).
    pub fn awaiting(spec: &CheckSpec, now: Instant) -> CheckStatus {
        CheckStatus {
            verdict: spec.initial.verdict(),
            reason: "waiting for the first health check".into(),
            since: now,
            last: None,
            awaiting_first: true,
        }
    }

    /// A verdict settled by the checks (or known from before a restart).
    pub fn settled(verdict: Verdict, reason: impl Into<String>, now: Instant) -> CheckStatus {
        CheckStatus {
            verdict,
            reason: reason.into(),
            since: now,
            last: None,
            awaiting_first: false,
        }
    }
}

impl BackendHealth {
    /// The worst settled verdict over all checks (down > going away > up); up without checks.
    pub fn verdict(&self) -> (Verdict, Option<&CheckStatus>) {
        self.worst()
            .map_or((Verdict::Up, None), |(_, c)| (c.verdict, Some(c)))
    }

    /// The check that decides the backend's health (its worst).
    pub fn worst(&self) -> Option<(&CheckSpec, &CheckStatus)> {
        let rank = |v: Verdict| match v {
            Verdict::Up => 0,
            Verdict::GoingAway => 1,
            Verdict::Down => 2,
        };
        self.checks.iter().max_by_key(|(_, c)| rank(c.verdict))
    }
}

/// A check some VIP wants run against a backend.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WantedCheck {
    pub backend: IpAddr,
    pub spec: CheckSpec,
}

/// A ring to publish, with what it was built from.
pub struct Ring {
    pub slots: Vec<u32>,
    pub weights: BTreeMap<u32, u32>,
    pub failing_open: bool,
}

pub(super) struct RingWeights {
    pub weights: BTreeMap<u32, u32>,
    pub failing_open: bool,
}

impl State {
    /// A member's state now, and the reason for it.
    pub fn member_state(&self, vip: &VipState, m: &Member, now: Instant) -> (MemberState, String) {
        let slot = self.backends[m.backend_id as usize]
            .as_ref()
            .expect("members refer to live backend slots");
        if slot.disabled {
            return (MemberState::Disabled, "disabled by the operator".into());
        }
        let (verdict, check) = slot.health.verdict();
        let reason = || check.map(|c| c.reason.clone()).unwrap_or_default();
        match verdict {
            Verdict::Down => return (MemberState::Down, reason()),
            Verdict::GoingAway => return (MemberState::Draining, reason()),
            Verdict::Up => {}
        }
        if m.drain.is_some() {
            return (MemberState::Draining, "operator drain".into());
        }
        if let Some(e) = &slot.outlier.ejection {
            return (MemberState::Ejected, e.describe(now));
        }
        if ramp(vip, m, now).is_some() {
            return (MemberState::SlowStart, "weight ramping up".into());
        }
        (MemberState::Up, reason())
    }

    /// Ring weights of a VIP's members now (absent: out of the ring).
    pub(super) fn ring_weights(&self, vip: &VipState, now: Instant) -> RingWeights {
        let mut weights = BTreeMap::new();
        let mut down = Vec::new();
        for m in &vip.members {
            let (state, _) = self.member_state(vip, m, now);
            let w = m.weight as u32;
            match state {
                MemberState::Up => {
                    weights.insert(m.backend_id, w * RAMP_STEPS);
                }
                MemberState::SlowStart => {
                    let step = ramp(vip, m, now).unwrap_or(RAMP_STEPS);
                    weights.insert(m.backend_id, w * step);
                }
                MemberState::Down => down.push(m),
                MemberState::Draining | MemberState::Disabled | MemberState::Ejected => {}
            }
        }
        weights.retain(|_, w| *w > 0);
        // Failing open needs a down backend with a weight to fall back on.
        let failing_open = weights.is_empty()
            && vip.spec.policy.all_backends_down == AllDown::FailOpen
            && down.iter().any(|m| m.weight > 0);
        if failing_open {
            for m in down.iter().filter(|m| m.weight > 0) {
                weights.insert(m.backend_id, m.weight as u32 * RAMP_STEPS);
            }
        }
        RingWeights {
            weights,
            failing_open,
        }
    }

    /// Whether every backend of the VIP is down (with or without failing open).
    pub fn all_down(&self, vip: &VipState, now: Instant) -> bool {
        !vip.members.is_empty()
            && vip
                .members
                .iter()
                .all(|m| self.member_state(vip, m, now).0 == MemberState::Down)
    }

    /// `BACKEND_F_DOWN` for a backend that is disabled or down, unless a VIP failing open still
    /// sends to it (its flows then stay where they are).
    pub(super) fn down_flag(&self, id: u32) -> u8 {
        let Some(slot) = self.backends.get(id as usize).and_then(Option::as_ref) else {
            return 0;
        };
        let out = slot.disabled || slot.health.verdict().0 == Verdict::Down;
        let failing_open = || {
            self.vips
                .iter()
                .any(|v| v.failing_open && v.members.iter().any(|m| m.backend_id == id))
        };
        if out && (slot.disabled || !failing_open()) {
            BACKEND_F_DOWN
        } else {
            0
        }
    }

    /// Mark a VIP's ring and all its members' backend slots for writing.
    pub(super) fn mark_members_pending(&mut self, vip_index: usize) {
        let v = &self.vips[vip_index];
        self.pending.vips.insert(v.id);
        for m in &v.members {
            self.pending.backends.insert(m.backend_id);
        }
    }

    /// Mark every VIP with backend `id` (and its members' slots) for writing.
    pub(super) fn mark_backend_pending(&mut self, id: u32) {
        self.pending.backends.insert(id);
        let affected: Vec<usize> = (0..self.vips.len())
            .filter(|&i| self.vips[i].members.iter().any(|m| m.backend_id == id))
            .collect();
        for i in affected {
            self.mark_members_pending(i);
        }
    }

    /// Backends present at start-up are not "new": no slow start for them.
    pub fn skip_slow_start(&mut self) {
        for v in &mut self.vips {
            for m in &mut v.members {
                m.slow_start_from = None;
            }
        }
    }

    /// The backend id of an address, if it is a backend.
    pub fn backend_id(&self, addr: IpAddr) -> Option<u32> {
        self.backends().find(|&(_, a)| a == addr).map(|(id, _)| id)
    }

    pub fn backend_disabled(&self, id: u32) -> bool {
        self.backends[id as usize]
            .as_ref()
            .is_some_and(|s| s.disabled)
    }

    pub fn backend_health(&self, id: u32) -> Option<&BackendHealth> {
        self.backends
            .get(id as usize)
            .and_then(Option::as_ref)
            .map(|s| &s.health)
    }

    /// Operator disable/enable of a backend in every VIP. Returns whether anything changed.
    pub fn set_disabled(&mut self, addr: IpAddr, disabled: bool) -> Result<bool, StateError> {
        let Some(id) = self.backend_id(addr) else {
            return err(ErrorKind::NotFound, format!("{addr} is not a backend"));
        };
        let slot = self.backends[id as usize].as_mut().expect("found");
        if slot.disabled == disabled {
            return Ok(false);
        }
        slot.disabled = disabled;
        if !disabled {
            self.start_slow_start(id);
        }
        self.mark_backend_pending(id);
        Ok(true)
    }

    /// Record a check's settled verdict for `addr`. Returns the member states before and after
    /// for each VIP of the backend whose state changed (for logs and metrics).
    pub fn set_check_status(
        &mut self,
        addr: IpAddr,
        spec: &CheckSpec,
        status: CheckStatus,
        now: Instant,
    ) -> Vec<(String, MemberState, MemberState, String)> {
        let Some(id) = self.backend_id(addr) else {
            return Vec::new();
        };
        let before = self.states_of(id, now);
        let slot = self.backends[id as usize].as_mut().expect("found");
        // Down by a failure, not merely waiting for a first result: a recovery, which ramps.
        let failed = slot
            .health
            .worst()
            .is_some_and(|(_, c)| c.verdict == Verdict::Down && !c.awaiting_first);
        slot.health.checks.insert(spec.clone(), status);
        let is = slot.health.verdict().0;
        if failed && is != Verdict::Down {
            self.start_slow_start(id);
        }
        self.mark_backend_pending(id);
        let after = self.states_of(id, now);
        before
            .into_iter()
            .zip(after)
            .filter(|(b, a)| b.1 != a.1)
            .map(|(b, a)| (b.0, b.1, a.1, a.2))
            .collect()
    }

    /// Where a check task for `spec` of `addr` starts from.
    pub fn check_start(&self, addr: IpAddr, spec: &CheckSpec) -> Start {
        let status = self
            .backend_id(addr)
            .and_then(|id| self.backend_health(id)?.checks.get(spec));
        match status {
            Some(c) if !c.awaiting_first => Start::Settled(c.verdict),
            Some(c) => Start::Awaiting(c.verdict),
            None => Start::Awaiting(spec.initial.verdict()),
        }
    }

    /// After a restart, the adopted data plane says which backends were serving: their checks
    /// go on from that (up stays up until `fall` failures; down must rise again), instead of
    /// waiting for a first result, so a restart never takes a working server out of the ring
    /// nor sends new flows to a dead one.
    pub fn seed_adopted_health(&mut self, up: &[IpAddr], down: &[IpAddr], now: Instant) {
        for w in self.wanted_checks() {
            let status = if down.contains(&w.backend) {
                CheckStatus::settled(Verdict::Down, "down before the restart", now)
            } else if up.contains(&w.backend) {
                CheckStatus::settled(Verdict::Up, "up before the restart", now)
            } else {
                continue;
            };
            self.set_check_status(w.backend, &w.spec, status, now);
        }
    }

    /// Record the latest single check (no state change).
    pub fn set_last_check(&mut self, addr: IpAddr, spec: &CheckSpec, detail: String, t: Duration) {
        if let Some(id) = self.backend_id(addr)
            && let Some(slot) = self.backends[id as usize].as_mut()
            && let Some(c) = slot.health.checks.get_mut(spec)
        {
            c.last = Some((detail, t));
        }
    }

    /// (VIP name, state, reason) of every membership of backend `id`.
    fn states_of(&self, id: u32, now: Instant) -> Vec<(String, MemberState, String)> {
        let mut out = Vec::new();
        for v in &self.vips {
            for m in v.members.iter().filter(|m| m.backend_id == id) {
                let (s, r) = self.member_state(v, m, now);
                out.push((v.spec.name(), s, r));
            }
        }
        out
    }

    pub(super) fn start_slow_start(&mut self, id: u32) {
        let now = self.clock.now();
        for v in &mut self.vips {
            if v.spec.policy.slow_start.is_zero() {
                continue;
            }
            for m in v.members.iter_mut().filter(|m| m.backend_id == id) {
                m.slow_start_from = Some(now);
            }
        }
    }

    /// The checks the VIPs want run, one per (backend, spec).
    pub fn wanted_checks(&self) -> HashSet<WantedCheck> {
        let mut out = HashSet::new();
        for v in &self.vips {
            for m in &v.members {
                let spec = resolve_check(
                    v.spec.policy.health_check.as_ref(),
                    m.health_check.as_ref(),
                    v.spec.port,
                );
                if let Ok(Some(spec)) = spec {
                    out.insert(WantedCheck {
                        backend: self.backend_address(m.backend_id),
                        spec,
                    });
                }
            }
        }
        out
    }

    /// Make the backends' check entries match the checks the VIPs want: forget verdicts of
    /// checks nobody wants any more (a removed VIP's check must not keep its backends down), and
    /// give each newly wanted check its `initial_state` until it answers (a backend added with
    /// checks is out of the ring until its first check passes). Returns whether a backend's
    /// health changed.
    pub fn align_checks(&mut self, now: Instant) -> bool {
        let wanted = self.wanted_checks();
        let mut changed = Vec::new();
        for (id, slot) in self.backends.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            let before = slot.health.verdict().0;
            let addr = slot.address;
            slot.health.checks.retain(|spec, _| {
                wanted.contains(&WantedCheck {
                    backend: addr,
                    spec: spec.clone(),
                })
            });
            for w in wanted.iter().filter(|w| w.backend == addr) {
                slot.health
                    .checks
                    .entry(w.spec.clone())
                    .or_insert_with(|| CheckStatus::awaiting(&w.spec, now));
            }
            if slot.health.verdict().0 != before {
                changed.push(id as u32);
            }
        }
        for &id in &changed {
            self.mark_backend_pending(id);
        }
        !changed.is_empty()
    }

    /// Mark VIPs whose ring weights moved since they were published (slow-start steps, a ramp
    /// that ended). Returns whether any did.
    pub fn advance_ramps(&mut self, now: Instant) -> bool {
        let mut due = Vec::new();
        for (i, v) in self.vips.iter().enumerate() {
            if v.members.iter().any(|m| m.slow_start_from.is_some()) {
                let w = self.ring_weights(v, now);
                if w.weights != v.published_weights {
                    due.push(i);
                }
            }
        }
        for v in &mut self.vips {
            for m in &mut v.members {
                if m.slow_start_from
                    .is_some_and(|t| now.duration_since(t) >= v.spec.policy.slow_start)
                {
                    m.slow_start_from = None;
                }
            }
        }
        for &i in &due {
            self.mark_members_pending(i);
        }
        !due.is_empty()
    }

    /// Operator drains in progress: (VIP key, backend address, drain).
    pub fn drains(&self) -> Vec<(VipKey, IpAddr, Drain)> {
        let mut out = Vec::new();
        for v in &self.vips {
            for m in &v.members {
                if let Some(d) = m.drain {
                    out.push((v.key, self.backend_address(m.backend_id), d));
                }
            }
        }
        out
    }

    /// Whether any member is draining (by operator or health): flow counts are needed.
    pub fn any_draining(&self, now: Instant) -> bool {
        self.vips.iter().any(|v| {
            v.members
                .iter()
                .any(|m| self.member_state(v, m, now).0 == MemberState::Draining)
        })
    }
}

/// The slow-start step (1..RAMP_STEPS-1) a member is at, `None` when not ramping.
fn ramp(vip: &VipState, m: &Member, now: Instant) -> Option<u32> {
    let from = m.slow_start_from?;
    let window = vip.spec.policy.slow_start;
    if window.is_zero() {
        return None;
    }
    let elapsed = now.saturating_duration_since(from);
    // Step k covers [k-1, k) tenths of the window; the first step already carries 1/10.
    let step = (elapsed.as_nanos() * RAMP_STEPS as u128 / window.as_nanos()) as u32 + 1;
    (step < RAMP_STEPS).then_some(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CFG: &str = r#"
        [[vip]]
        address = "198.18.100.1"
        port = 80
        protocol = "tcp"
        ring_size = 1009
        slow_start = "10s"
        [vip.health_check]
        type = "tcp"
        [[vip.backend]]
        address = "198.18.0.21"
        [[vip.backend]]
        address = "198.18.0.22"
    "#;

    fn status(v: Verdict) -> CheckStatus {
        CheckStatus::settled(v, "test", Instant::now())
    }

    fn setup(policy: &str) -> (State, CheckSpec, IpAddr, IpAddr) {
        let cfg = Config::parse(&CFG.replace("slow_start = \"10s\"", policy)).unwrap();
        let s = State::from_config(&cfg, 10_000).unwrap();
        let spec = s.wanted_checks().into_iter().next().unwrap().spec;
        (
            s,
            spec,
            "198.18.0.21".parse().unwrap(),
            "198.18.0.22".parse().unwrap(),
        )
    }

    #[test]
    fn down_leaves_ring_and_flags_flows_for_rescheduling() {
        let (mut s, spec, a, _) = setup("slow_start = \"10s\"");
        let now = Instant::now();
        let changes = s.set_check_status(a, &spec, status(Verdict::Down), now);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].1, changes[0].2),
            (MemberState::Up, MemberState::Down)
        );
        let ring = s.ring(&s.vips[0], now);
        assert!(ring.slots.iter().all(|&b| b == 1));
        assert_eq!(s.backend_value(0).flags & BACKEND_F_DOWN, BACKEND_F_DOWN);
        // Recovery: slow start at a tenth of the weight.
        s.set_check_status(a, &spec, status(Verdict::Up), now);
        let (st, _) = s.member_state(&s.vips[0], &s.vips[0].members[0], Instant::now());
        assert_eq!(st, MemberState::SlowStart);
        let w = s.ring_weights(&s.vips[0], Instant::now()).weights;
        assert_eq!(w[&0] * RAMP_STEPS, w[&1]);
        assert_eq!(s.backend_value(0).flags & BACKEND_F_DOWN, 0);
        let later = Instant::now() + Duration::from_secs(11);
        assert_eq!(s.ring_weights(&s.vips[0], later).weights[&0], w[&1]);
    }

    #[test]
    fn going_away_drains_without_rescheduling() {
        let (mut s, spec, a, _) = setup("");
        let now = Instant::now();
        s.set_check_status(a, &spec, status(Verdict::GoingAway), now);
        assert_eq!(
            s.member_state(&s.vips[0], &s.vips[0].members[0], now).0,
            MemberState::Draining
        );
        assert!(s.ring(&s.vips[0], now).slots.iter().all(|&b| b == 1));
        assert_eq!(s.backend_value(0).flags & BACKEND_F_DOWN, 0);
    }

    #[test]
    fn all_down_fails_open_or_drops() {
        for (policy, open) in [("", true), ("all_backends_down = \"drop\"", false)] {
            let (mut s, spec, a, b) = setup(policy);
            let now = Instant::now();
            s.set_check_status(a, &spec, status(Verdict::Down), now);
            s.set_check_status(b, &spec, status(Verdict::Down), now);
            assert!(s.all_down(&s.vips[0], now));
            let ring = s.ring(&s.vips[0], now);
            assert_eq!(ring.failing_open, open);
            assert_eq!(ring.slots.contains(&0), open, "{policy}");
            s.vips[0].failing_open = ring.failing_open;
            let flag = s.backend_value(0).flags & BACKEND_F_DOWN;
            assert_eq!(flag == 0, open, "{policy}");
        }
    }

    #[test]
    fn disabled_wins_and_pruned_checks_release() {
        let (mut s, spec, a, _) = setup("");
        let now = Instant::now();
        assert!(s.set_disabled(a, true).unwrap());
        assert_eq!(
            s.member_state(&s.vips[0], &s.vips[0].members[0], now).0,
            MemberState::Disabled
        );
        assert_eq!(s.backend_value(0).flags & BACKEND_F_DOWN, BACKEND_F_DOWN);
        assert!(s.set_disabled(a, false).unwrap());
        s.set_check_status(a, &spec, status(Verdict::Down), now);
        s.vips[0].spec.policy.health_check = None;
        assert!(s.align_checks(now));
        assert_eq!(
            s.member_state(&s.vips[0], &s.vips[0].members[0], now).0,
            MemberState::Up
        );
    }

    #[test]
    fn a_checked_backend_waits_out_of_the_ring_for_its_first_pass() {
        let (mut s, spec, a, b) = setup("slow_start = \"10s\"");
        let now = Instant::now();
        assert!(s.align_checks(now), "both backends start waiting");
        let vip = &s.vips[0];
        let (st, why) = s.member_state(vip, &vip.members[0], now);
        assert_eq!(st, MemberState::Down);
        assert_eq!(why, "waiting for the first health check");
        assert!(s.check_start(a, &spec) == Start::Awaiting(Verdict::Down));
        // Every backend waits: the VIP fails open rather than dropping everything.
        assert!(s.ring(&s.vips[0], now).failing_open);
        // b answers first: alone in the ring, at full weight (a first answer is no recovery).
        s.set_check_status(b, &spec, status(Verdict::Up), now);
        let ring = s.ring(&s.vips[0], now);
        assert!(!ring.failing_open);
        assert!(ring.slots.iter().all(|&id| id == 1));
        assert_eq!(
            s.member_state(&s.vips[0], &s.vips[0].members[1], now).0,
            MemberState::Up
        );
        assert!(!s.align_checks(now), "nothing new to seed");
    }

    #[test]
    fn initial_state_up_keeps_the_old_behaviour() {
        let cfg = CFG.replace("type = \"tcp\"", "type = \"tcp\"\ninitial_state = \"up\"");
        let mut s = State::from_config(&Config::parse(&cfg).unwrap(), 10_000).unwrap();
        let spec = s.wanted_checks().into_iter().next().unwrap().spec;
        let a = "198.18.0.21".parse().unwrap();
        let now = Instant::now();
        s.align_checks(now);
        assert_eq!(
            s.member_state(&s.vips[0], &s.vips[0].members[0], now).0,
            MemberState::Up
        );
        assert!(s.check_start(a, &spec) == Start::Awaiting(Verdict::Up));
    }

    #[test]
    fn an_adopted_data_plane_says_who_was_serving() {
        let (mut s, spec, a, b) = setup("");
        let now = Instant::now();
        s.seed_adopted_health(&[a, b], &[b], now);
        s.align_checks(now);
        assert_eq!(s.check_start(a, &spec), Start::Settled(Verdict::Up));
        assert_eq!(s.check_start(b, &spec), Start::Settled(Verdict::Down));
        let vip = &s.vips[0];
        assert_eq!(s.member_state(vip, &vip.members[0], now).0, MemberState::Up);
        assert_eq!(
            s.member_state(vip, &vip.members[1], now).0,
            MemberState::Down
        );
    }
}
