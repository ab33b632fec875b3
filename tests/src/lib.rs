//! Kinescope's end-to-end tests. They start the real `kinescope` binary on loopback and drive it
//! with real clients: `tests/*.rs` with Kinescope's own producer client (`kinescope-devices`),
//! `tests/e2e/` (Python) with boto3, the AWS CLI, curl, ffmpeg, GStreamer and PyAV.
//! `scripts/test` builds the binary, installs those clients and runs both.
