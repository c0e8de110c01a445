//! Rise/fall: turns single check results into a settled verdict. Counts are consecutive: one
//! success in the middle of failures starts the count again, so a flapping backend changes state
//! no faster than `fall` failures or `rise` successes in a row allow.
use super::probe::Verdict;

/// A settled change of verdict and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub from: Verdict,
    pub to: Verdict,
    /// e.g. "connect refused ×3", "ok ×2".
    pub reason: String,
}

/// Where a check task starts from: what the desired state knows of the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// No result yet; the backend counts as this meanwhile (`initial_state`).
    Awaiting(Verdict),
    /// A settled verdict (an earlier task's, or the data plane's before a restart).
    Settled(Verdict),
}

impl Start {
    pub fn tracker(self, rise: u32, fall: u32) -> Tracker {
        match self {
            Start::Awaiting(v) => Tracker::awaiting(v, rise, fall),
            Start::Settled(v) => Tracker::resuming(v, rise, fall),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Tracker {
    rise: u32,
    fall: u32,
    settled: Verdict,
    /// The first result is announced even when it confirms the assumed `Up`, so the daemon
    /// learns the check exists.
    announced: bool,
    /// No result yet and the backend waits for one (`initial_state = "down"`): the first result
    /// settles the verdict whatever it is, without waiting for `rise` or `fall`.
    first_decides: bool,
    streak: Verdict,
    count: u32,
}

impl Tracker {
    /// A check that has not answered yet: the backend is `initial` until it does. From `Down`
    /// the first result decides (a new server is in as soon as it answers once); from `Up` a
    /// failure needs `fall` results like any up backend's.
    pub fn awaiting(initial: Verdict, rise: u32, fall: u32) -> Tracker {
        Tracker {
            first_decides: initial != Verdict::Up,
            announced: false,
            ..Tracker::resuming(initial, rise, fall)
        }
    }

    /// A tracker that goes on from a settled verdict (a restarted daemon adopting a backend: one
    /// that was down must rise again before it gets new flows; one that was up stays up until
    /// `fall` failures).
    pub fn resuming(settled: Verdict, rise: u32, fall: u32) -> Tracker {
        Tracker {
            rise,
            fall,
            settled,
            announced: settled != Verdict::Up,
            first_decides: false,
            streak: settled,
            count: 0,
        }
    }

    pub fn settled(&self) -> Verdict {
        self.settled
    }

    /// A change is under way (results disagree with the settled verdict): check more often.
    pub fn pending(&self) -> bool {
        self.count > 0 && self.streak != self.settled
    }

    /// Feed one result; returns the settled change it completes, if any.
    pub fn observe(&mut self, verdict: Verdict, detail: &str) -> Option<Change> {
        if verdict == self.streak {
            self.count = self.count.saturating_add(1);
        } else {
            self.streak = verdict;
            self.count = 1;
        }
        let needed = match verdict {
            Verdict::Up => self.rise,
            Verdict::Down | Verdict::GoingAway => self.fall,
        };
        let first_up = !self.announced && verdict == Verdict::Up && verdict == self.settled;
        let decides = std::mem::take(&mut self.first_decides);
        if decides || first_up || (verdict != self.settled && self.count >= needed) {
            self.announced = true;
            let from = self.settled;
            self.settled = verdict;
            let reason = if decides {
                format!("first check: {detail}")
            } else {
                format!("{detail} ×{}", self.count)
            };
            return Some(Change {
                from,
                to: verdict,
                reason,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn fall_and_rise_need_consecutive_results() {
        let mut t = Tracker::awaiting(Up, 2, 3);
        assert_eq!(
            t.observe(Up, "ok").unwrap().to,
            Up,
            "first result announced"
        );
        assert!(t.observe(Down, "connect refused").is_none());
        assert!(t.pending());
        assert!(t.observe(Down, "connect refused").is_none());
        assert!(t.observe(Up, "ok").is_none(), "a success resets the count");
        assert!(!t.pending());
        assert!(t.observe(Down, "connect refused").is_none());
        assert!(t.observe(Down, "connect refused").is_none());
        let c = t.observe(Down, "connect refused").unwrap();
        assert_eq!((c.from, c.to), (Up, Down));
        assert_eq!(c.reason, "connect refused ×3");
        assert!(t.observe(Up, "ok").is_none());
        assert!(t.observe(Down, "timeout").is_none());
        assert!(t.observe(Up, "ok").is_none());
        assert_eq!(t.observe(Up, "ok").unwrap().reason, "ok ×2");
        assert_eq!(t.settled(), Up);
    }

    #[test]
    fn a_backend_known_down_must_rise() {
        let mut t = Tracker::resuming(Down, 2, 3);
        assert!(t.observe(Up, "ok").is_none(), "one success is not enough");
        assert_eq!(t.observe(Up, "ok").unwrap().from, Down);
    }

    #[test]
    fn a_new_backend_waiting_down_is_decided_by_its_first_result() {
        let mut t = Tracker::awaiting(Down, 2, 3);
        let c = t.observe(Up, "ok").unwrap();
        assert_eq!(
            (c.from, c.to, c.reason.as_str()),
            (Down, Up, "first check: ok")
        );
        assert!(t.observe(Down, "refused").is_none(), "then fall applies");

        let mut t = Tracker::awaiting(Down, 2, 3);
        let c = t.observe(Down, "connect refused").unwrap();
        assert_eq!(
            (c.from, c.to),
            (Down, Down),
            "announced, so the reason is known"
        );
        assert!(t.observe(Up, "ok").is_none(), "then rise applies");
        assert_eq!(t.observe(Up, "ok").unwrap().to, Up);
    }

    #[test]
    fn flapping_faster_than_rise_and_fall_never_settles() {
        let mut t = Tracker::awaiting(Up, 2, 3);
        t.observe(Up, "ok");
        for i in 0..100 {
            let v = if i % 4 < 2 { Down } else { Up };
            assert!(t.observe(v, "x").is_none(), "result {i}");
        }
    }

    #[test]
    fn going_away_settles_like_a_failure_and_is_distinct() {
        let mut t = Tracker::awaiting(Up, 2, 2);
        t.observe(Up, "ok");
        t.observe(GoingAway, "HTTP 503");
        let c = t.observe(GoingAway, "HTTP 503").unwrap();
        assert_eq!(c.to, GoingAway);
        t.observe(Down, "connect refused");
        assert_eq!(t.observe(Down, "connect refused").unwrap().from, GoingAway);
    }
}
