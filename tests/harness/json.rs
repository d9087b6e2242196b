//! Reading what podsig reports: a record's ancestry, the history and `why` (polled: the
//! recorder commits in batches), and the metrics endpoint.

use std::{
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::process::{Podsig, TIMEOUT, podsig_output};

/// Ancestry as (pid, comm) pairs.
pub fn chain(event: &Value) -> Vec<(u64, String)> {
    event["ancestry"]
        .as_array()
        .expect("ancestry array")
        .iter()
        .map(|a| (a["pid"].as_u64().unwrap(), a["comm"].as_str().unwrap().to_string()))
        .collect()
}

/// `podsig history --history DB ARGS -o json`, parsed; panics on failure.
pub fn history(db: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["history", "--history", db.to_str().unwrap(), "-o", "json"];
    a.extend_from_slice(args);
    let (st, out, err) = podsig_output(&a);
    assert!(st.success(), "podsig {a:?}: {err}");
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// Polls the history until an event matches: the recorder commits in batches.
pub fn history_until(db: &std::path::Path, args: &[&str], want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let events = if db.exists() { history(db, args) } else { Vec::new() };
        if let Some(ev) = events.into_iter().find(&want) {
            return ev;
        }
        assert!(Instant::now() < deadline, "no matching event in the history {} for {args:?}", db.display());
        thread::sleep(Duration::from_millis(200));
    }
}

/// `podsig why --history DB ARGS -o json`, polled until its verdict is `verdict`: the
/// recorder commits in batches.
pub fn why_until(db: &std::path::Path, args: &[&str], verdict: &str) -> Value {
    let mut a = vec!["why", "--history", db.to_str().unwrap(), "-o", "json"];
    a.extend_from_slice(args);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (st, out, err) = if db.exists() { podsig_output(&a) } else { Default::default() };
        let answer: Option<Value> = st.success().then(|| serde_json::from_str(&out).expect("why -o json"));
        if let Some(v) = answer.filter(|v| v["verdict"] == verdict) {
            return v;
        }
        assert!(Instant::now() < deadline, "no {verdict} from podsig {a:?}: {out} {err}");
        thread::sleep(Duration::from_millis(250));
    }
}

/// The address podsig printed for --metrics-addr (`podsig: metrics at http://ADDR/metrics`).
pub fn metrics_addr(p: &Podsig) -> String {
    p.stderr_lines
        .iter()
        .find_map(|l| l.strip_prefix("podsig: metrics at http://")?.strip_suffix("/metrics").map(str::to_string))
        .unwrap_or_else(|| panic!("no metrics line in {:?}", p.stderr_lines))
}

/// A plain HTTP/1.0 GET; returns (status line, body).
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// The value of the first sample line that starts with `prefix` in a Prometheus exposition.
pub fn sample(exposition: &str, prefix: &str) -> Option<f64> {
    exposition.lines().find(|l| l.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
}
