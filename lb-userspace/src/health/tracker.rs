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

#[derive(Clone, Debug)]
pub struct Tracker {
    rise: u32,
    fall: u32,
    settled: Verdict,
    /// The first result is announced even when it confirms the assumed `Up`, so the daemon
    /// learns the check exists.
    announced: bool,
    streak: Verdict,
    count: u32,
}

impl Tracker {
    /// A backend is assumed up until checks say otherwise (a restart or a new check must not take
    /// working servers out of the ring).
    pub fn new(rise: u32, fall: u32) -> Tracker {
        Tracker::starting(Verdict::Up, rise, fall)
    }

    /// A tracker that starts from a known verdict (a restarted daemon adopting a backend that
    /// was down: it must rise again before it gets new flows).
    pub fn starting(settled: Verdict, rise: u32, fall: u32) -> Tracker {
        Tracker {
            rise,
            fall,
            settled,
            announced: settled != Verdict::Up,
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
        let first = !self.announced && verdict == Verdict::Up && verdict == self.settled;
        if first || (verdict != self.settled && self.count >= needed) {
            self.announced = true;
            let from = self.settled;
            self.settled = verdict;
            return Some(Change {
                from,
                to: verdict,
                reason: format!("{detail} ×{}", self.count),
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
        let mut t = Tracker::new(2, 3);
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
        let mut t = Tracker::starting(Down, 2, 3);
        assert!(t.observe(Up, "ok").is_none(), "one success is not enough");
        assert_eq!(t.observe(Up, "ok").unwrap().from, Down);
    }

    #[test]
    fn flapping_faster_than_rise_and_fall_never_settles() {
        let mut t = Tracker::new(2, 3);
        t.observe(Up, "ok");
        for i in 0..100 {
            let v = if i % 4 < 2 { Down } else { Up };
            assert!(t.observe(v, "x").is_none(), "result {i}");
        }
    }

    #[test]
    fn going_away_settles_like_a_failure_and_is_distinct() {
        let mut t = Tracker::new(2, 2);
        t.observe(Up, "ok");
        t.observe(GoingAway, "HTTP 503");
        let c = t.observe(GoingAway, "HTTP 503").unwrap();
        assert_eq!(c.to, GoingAway);
        t.observe(Down, "connect refused");
        assert_eq!(t.observe(Down, "connect refused").unwrap().from, GoingAway);
    }
}
