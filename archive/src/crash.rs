//! Crash points (issue 12, design/0015 "Crash consistency"): `KINESCOPE_CRASH_AT=<step>` makes
//! the process abort when it reaches that step of a commit, packing or deletion, as a `kill -9`
//! landing exactly there would. The end-to-end tests (tests/e2e/test_crash.py) restart the
//! server after each and check with `kinescope fsck` that nothing acknowledged was lost and
//! nothing is left behind. Unset, a step costs one load of a once-initialised value.

use std::sync::OnceLock;

/// The steps, between two writes that a crash could separate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A fragment's bytes are durable (log or object); its row is not committed.
    CommitStored,
    /// Its row is committed; it is not acknowledged yet.
    CommitRecorded,
    /// A packed object is written; its fragments' rows still point into the log.
    PackWritten,
    /// The rows point into the packed object; the log segments are not removed yet.
    PackMoved,
    /// Expired (or over-budget) rows are deleted; the objects they pointed into are not.
    ExpireRows,
    /// A stream is marked deleted; its fragments and objects are all still there.
    DeleteStreamMarked,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::CommitStored => "commit-stored",
            Step::CommitRecorded => "commit-recorded",
            Step::PackWritten => "pack-written",
            Step::PackMoved => "pack-moved",
            Step::ExpireRows => "expire-rows",
            Step::DeleteStreamMarked => "delete-stream-marked",
        }
    }
}

/// Aborts the process if `KINESCOPE_CRASH_AT` names `step`.
pub(crate) fn crash_point(step: Step) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("KINESCOPE_CRASH_AT").ok());
    if at.as_deref() == Some(step.name()) {
        eprintln!("KINESCOPE_CRASH_AT={}: aborting", step.name());
        std::process::abort();
    }
}
