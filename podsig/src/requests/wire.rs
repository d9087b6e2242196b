//! Placeholder for the request parsers (the request-wire branch replaces this file).

/// Which manager's socket the bytes were written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Socket {
    SystemdPrivate,
    SystemBus,
    Docker,
    Containerd,
}

/// A request that names an object a manager may stop or signal.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub method: String,
    pub object: String,
    pub mode: Option<String>,
    pub signal: Option<i32>,
    pub timeout_s: Option<i64>,
    pub inferred: bool,
}

pub fn parse(_socket: Socket, _bytes: &[u8]) -> Vec<Request> {
    Vec::new()
}
