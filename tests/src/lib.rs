//! Kinescope's end-to-end tests live beside this crate, in `tests/e2e/`: they start the real
//! `kinescope` binary on loopback and drive it with the real clients our users run (boto3 and the
//! AWS CLI now; curl, ffmpeg, GStreamer and browsers as the data plane lands). `scripts/test`
//! installs those clients and runs the suite after the Rust tests.
