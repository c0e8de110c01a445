//! Health checks: what a check is ([`spec`]), one probe ([`probe`]), rise/fall ([`tracker`]),
//! a task per check ([`checker`]) and the set of running tasks ([`supervisor`]). Results go to
//! the control task as [`checker::Report`]s; only it changes state.
pub mod checker;
pub mod probe;
pub mod spec;
pub mod supervisor;
pub mod tracker;
