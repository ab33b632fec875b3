//! A real S3-compatible server for tests: `s3s-fs` 0.14.1 (installed by
//! `scripts/install-test-deps`), on a free port, over a temporary directory, with fixed
//! credentials; it checks SigV4 signatures. Shared by `kinescope-archive`'s store conformance
//! suite and the end-to-end tests in `tests/` (which include this file by path).

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `s3s-fs`, killed on drop.
#[derive(Debug)]
pub struct S3sFs {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// A bucket that exists.
    pub bucket: String,
    /// The server's root directory: a bucket is a directory, an object a file.
    pub dir: tempfile::TempDir,
}

impl S3sFs {
    pub const ACCESS_KEY: &'static str = "kinescope-test";
    pub const SECRET_KEY: &'static str = "kinescope-test-secret";

    /// `$KINESCOPE_S3S_FS`, else `s3s-fs` on `PATH`, else `~/.cargo/bin/s3s-fs`.
    fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os("KINESCOPE_S3S_FS") {
            return p.into();
        }
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("s3s-fs"))
                .find(|p| p.is_file())
        });
        let in_cargo = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cargo/bin/s3s-fs"))
            .filter(|p| p.is_file());
        on_path.or(in_cargo).unwrap_or_else(|| {
            panic!(
                "s3s-fs (the S3-compatible server these tests run against) is not installed: \
                 run scripts/install-test-deps, or \
                 `cargo install s3s-fs --version 0.14.1 --features binary --locked`, \
                 or point KINESCOPE_S3S_FS at the binary"
            )
        })
    }

    /// Starts the server with one bucket and waits until it accepts connections.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bucket = "kinescope-test".to_owned();
        std::fs::create_dir(dir.path().join(&bucket)).unwrap();
        let bin = Self::binary();
        // A free port: bound, read, released (s3s-fs takes a port, not a socket).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", Self::ACCESS_KEY])
            .args(["--secret-key", Self::SECRET_KEY])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            dir,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("s3s-fs exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
