//! Helpers shared by the real-server tests: servers started on 127.0.0.1 and stopped by PID.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start(cmd: &mut Command, log: &std::path::Path) -> Server {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Server(cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv tool `.local/NAME/bin/TOOL`, or None with a printed reason.
pub fn venv_tool(name: &str, tool: &str) -> Option<PathBuf> {
    let p = root().join(".local").join(name).join("bin").join(tool);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is missing (tools/setup.sh --test installs it)", p.display());
        None
    }
}

/// Calls `f` every 100 ms until it gives `Some`, for at most `within`.
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP request with curl-like simplicity over ureq; returns (status, body).
pub fn http(method: &str, url: &str, key: Option<&str>, body: Option<&str>) -> (u16, String) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let mut r = agent.request(method, url);
    if let Some(k) = key {
        r = r.set("X-Api-Key", k);
    }
    let res = match body {
        Some(b) => r.set("Content-Type", "application/json").send_string(b),
        None => r.call(),
    };
    match res {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, resp)) => (s, resp.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}
