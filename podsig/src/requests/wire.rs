//! From the first bytes of one write on a manager's control socket to the stop or signal requests
//! they carry.
//!
//! The bytes come from any process that can connect to the socket, are cut at the kernel's capture
//! size, and may start in the middle of a conversation: every length read from them is checked
//! against what is there, nothing is allocated for a length the input does not hold, and whatever
//! cannot be read with certainty yields nothing. A busy client's other requests must never read as
//! a stop, so each protocol is read strictly from the start of the write, message by message, and
//! a request is returned only when the method, the object and the recipient are all in the bytes.
//!
//! - D-Bus (systemd's private socket and the system bus): the message format of the D-Bus
//!   specification, either endianness, after the SASL lines that may share the first write.
//! - Docker: HTTP/1.1 request lines, pipelined requests skipped by their Content-Length.
//! - containerd and the CRI: HTTP/2 frames, the `:path` from HPACK (RFC 7541) and the gRPC body's
//!   protobuf; when the path only refers to the connection's dynamic table (grpc-go indexes a path
//!   it has sent before), a body whose shape admits no other reading is returned as `inferred`.

use serde::{Deserialize, Serialize};

/// Which manager's socket the bytes were written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Socket {
    SystemdPrivate,
    SystemBus,
    Docker,
    Containerd,
}

/// A request that names an object a manager may stop or signal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The manager's own name for it: "StopUnit", "RestartUnit", "KillUnit", … (systemd, as the D-Bus member);
    /// "stop", "kill", "restart", "remove" (Docker, from the URL); "Kill", "DeleteTask", "StopContainer",
    /// "RemoveContainer", "StopPodSandbox" (containerd/CRI, the gRPC method's last part).
    pub method: String,
    /// The unit ("nginx.service"), the container as the client named it (Docker: a name or an ID prefix;
    /// containerd/CRI: the ID), or the pod sandbox ID.
    pub object: String,
    /// systemd's job mode ("replace", "fail", …), or for KillUnit "whom" ("all", "main", "control").
    pub mode: Option<String>,
    /// The signal asked for (KillUnit's, Docker's `?signal=` as a number when it is a name such as KILL or
    /// SIGKILL, containerd's KillRequest.signal).
    pub signal: Option<i32>,
    /// The grace period asked for, in seconds (Docker `?t=`, CRI StopContainer's timeout).
    pub timeout_s: Option<i64>,
    /// It asks for the object to be stopped or signalled (stop/restart/kill, or a forced remove); requests
    /// that do not (Docker's DELETE without force, a status query) are not returned at all.
    /// How the method was known: false when it was read from the request; true when only inferred from the
    /// message's shape (a gRPC body whose method path was not in these bytes: see below).
    pub inferred: bool,
}

/// The stop-or-signal requests in `bytes` (several messages may share one write; a message cut short at the end
/// of the capture yields a request only if its method and object were complete).
pub fn parse(socket: Socket, bytes: &[u8]) -> Vec<Request> {
    match socket {
        Socket::SystemdPrivate | Socket::SystemBus => dbus::parse(socket, bytes),
        Socket::Docker => http::parse(bytes),
        Socket::Containerd => grpc::parse(bytes),
    }
}

/// The containers (by 64-hex ID) that calls on containerd's socket named without a method
/// podsig could read (a path from the connection's header table) nor a body it could infer
/// one from: any of them may have been a stop (StopPodSandbox, RemoveContainer), so a
/// container named here was maybe asked about. Empty for the other sockets.
pub fn unread_ids(socket: Socket, bytes: &[u8]) -> Vec<String> {
    match socket {
        Socket::Containerd => grpc::unread_ids(bytes),
        _ => Vec::new(),
    }
}

fn request(method: &str, object: String) -> Request {
    Request { method: method.to_string(), object, mode: None, signal: None, timeout_s: None, inferred: false }
}

/// A signal a manager would send: systemd, Docker and containerd refuse 0 (a mere existence check) and
/// numbers past SIGRTMAX, so such a request stops nothing.
fn valid_signal(n: i64) -> Option<i32> {
    (1..=i64::from(crate::signals::SIGRTMAX)).contains(&n).then_some(n as i32)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    // `windows(0)` panics.
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

mod dbus {
    //! The D-Bus wire format, for method calls to systemd's Manager and Unit objects.

    use super::{Request, Socket, request, valid_signal};

    const DESTINATION: &str = "org.freedesktop.systemd1";
    const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
    const MANAGER: &str = "org.freedesktop.systemd1.Manager";
    const UNIT_PREFIX: &str = "/org/freedesktop/systemd1/unit/";
    const UNIT: &str = "org.freedesktop.systemd1.Unit";
    /// The specification's limits: anything larger is not a message, so the bytes are not one.
    const MAX_MESSAGE: u64 = 1 << 27;
    const MAX_ARRAY: u32 = 1 << 26;

    /// What a method's arguments carry, in order.
    #[derive(Clone, Copy)]
    enum Arg {
        /// The unit's name (Manager methods; Unit methods name it in the path).
        Unit,
        Mode,
        /// EnqueueUnitJob's job type: only a stop or a restart is a stop.
        JobType,
        Signal,
        /// Read past: QueueSignal's value, KillUnitSubgroup's subgroup.
        Skip,
    }

    /// An argument's value, as its signature's type reads it.
    enum Value<'a> {
        Str(&'a str),
        Int(i32),
    }

    /// (member, signature, arguments): the methods that stop, restart or signal a unit.
    const MANAGER_METHODS: &[(&str, &str, &[Arg])] = &[
        ("StopUnit", "ss", &[Arg::Unit, Arg::Mode]),
        ("RestartUnit", "ss", &[Arg::Unit, Arg::Mode]),
        ("TryRestartUnit", "ss", &[Arg::Unit, Arg::Mode]),
        ("ReloadOrRestartUnit", "ss", &[Arg::Unit, Arg::Mode]),
        ("ReloadOrTryRestartUnit", "ss", &[Arg::Unit, Arg::Mode]),
        ("KillUnit", "ssi", &[Arg::Unit, Arg::Mode, Arg::Signal]),
        ("QueueSignalUnit", "ssii", &[Arg::Unit, Arg::Mode, Arg::Signal, Arg::Skip]),
        ("KillUnitSubgroup", "sssi", &[Arg::Unit, Arg::Mode, Arg::Skip, Arg::Signal]),
        ("EnqueueUnitJob", "sss", &[Arg::Unit, Arg::JobType, Arg::Mode]),
    ];
    const UNIT_METHODS: &[(&str, &str, &[Arg])] = &[
        ("Stop", "s", &[Arg::Mode]),
        ("Restart", "s", &[Arg::Mode]),
        ("TryRestart", "s", &[Arg::Mode]),
        ("ReloadOrRestart", "s", &[Arg::Mode]),
        ("ReloadOrTryRestart", "s", &[Arg::Mode]),
        ("Kill", "si", &[Arg::Mode, Arg::Signal]),
        ("QueueSignal", "sii", &[Arg::Mode, Arg::Signal, Arg::Skip]),
        ("KillSubgroup", "si", &[Arg::Skip, Arg::Signal]),
        ("EnqueueJob", "ss", &[Arg::JobType, Arg::Mode]),
    ];
    /// Job types that stop the unit's processes (systemd's job_type_table); "reload-or-start" and the
    /// like never stop a running unit.
    const STOPPING_JOBS: &[&str] = &["stop", "restart", "try-restart"];

    pub(super) fn parse(socket: Socket, bytes: &[u8]) -> Vec<Request> {
        let mut out = Vec::new();
        let Some(mut pos) = after_sasl(bytes) else { return out };
        while pos < bytes.len() {
            let Some(msg) = Message::read(&bytes[pos..]) else { break };
            out.extend(msg.request(socket));
            match msg.total {
                n if n <= bytes.len() - pos => pos += n,
                _ => break,
            }
        }
        out
    }

    /// Where messages start: a client's first write may carry its SASL exchange (a NUL byte, then
    /// lines up to `BEGIN`) ahead of its first message; a write of SASL lines only carries none.
    fn after_sasl(bytes: &[u8]) -> Option<usize> {
        let mut pos = usize::from(bytes.first() == Some(&0));
        let is_sasl = |b: &[u8]| {
            ["AUTH", "BEGIN", "DATA", "NEGOTIATE_UNIX_FD", "CANCEL", "ERROR"]
                .iter()
                .any(|c| b.starts_with(c.as_bytes()))
        };
        if pos == 0 && !is_sasl(bytes) {
            return Some(0);
        }
        loop {
            let rest = bytes.get(pos..)?;
            if !is_sasl(rest) {
                return None;
            }
            let end = super::find(rest, b"\r\n")?;
            pos += end + 2;
            if &rest[..end] == b"BEGIN" {
                return Some(pos);
            }
        }
    }

    #[derive(Clone, Copy)]
    enum Endian {
        Little,
        Big,
    }

    /// Reads at offsets from the message's start, where the format's alignment is counted from.
    struct Cursor<'a> {
        buf: &'a [u8],
        pos: usize,
        endian: Endian,
    }

    impl<'a> Cursor<'a> {
        fn align(&mut self, n: usize) -> Option<()> {
            self.pos = self.pos.checked_next_multiple_of(n)?;
            (self.pos <= self.buf.len()).then_some(())
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let end = self.pos.checked_add(n)?;
            let s = self.buf.get(self.pos..end)?;
            self.pos = end;
            Some(s)
        }

        fn u32(&mut self) -> Option<u32> {
            self.align(4)?;
            let b: [u8; 4] = self.take(4)?.try_into().ok()?;
            Some(match self.endian {
                Endian::Little => u32::from_le_bytes(b),
                Endian::Big => u32::from_be_bytes(b),
            })
        }

        /// A STRING or OBJECT_PATH: 4-byte length, UTF-8 without NUL, then a NUL.
        fn string(&mut self) -> Option<&'a str> {
            let len = self.u32()?;
            if len >= MAX_ARRAY {
                return None;
            }
            let s = self.take(len as usize)?;
            (self.take(1)? == [0]).then_some(())?;
            std::str::from_utf8(s).ok().filter(|s| !s.contains('\0'))
        }

        /// A SIGNATURE: 1-byte length, ASCII, then a NUL.
        fn signature(&mut self) -> Option<&'a str> {
            let len = self.take(1)?[0];
            let s = self.take(usize::from(len))?;
            (self.take(1)? == [0]).then_some(())?;
            std::str::from_utf8(s).ok()
        }

        /// A header field's value of a basic type; a container type ends the reading (no client puts
        /// one in a header, and skipping it would need a full unmarshaller).
        fn skip_basic(&mut self, ty: u8) -> Option<()> {
            match ty {
                b'y' => self.take(1).map(drop),
                b'n' | b'q' => self.align(2).and_then(|_| self.take(2)).map(drop),
                b'b' | b'i' | b'u' | b'h' => self.u32().map(drop),
                b'x' | b't' | b'd' => self.align(8).and_then(|_| self.take(8)).map(drop),
                b's' | b'o' => self.string().map(drop),
                b'g' => self.signature().map(drop),
                _ => None,
            }
        }
    }

    #[derive(Default)]
    struct Header<'a> {
        path: Option<&'a str>,
        interface: Option<&'a str>,
        member: Option<&'a str>,
        destination: Option<&'a str>,
        signature: Option<&'a str>,
    }

    struct Message<'a> {
        /// Its whole length, which may run past the capture.
        total: usize,
        /// A method call whose header fields are all in the capture.
        call: Option<(Header<'a>, Cursor<'a>)>,
    }

    impl<'a> Message<'a> {
        /// None when the bytes do not start a message (then nothing after them can be read).
        fn read(m: &'a [u8]) -> Option<Message<'a>> {
            let endian = match m.first()? {
                b'l' => Endian::Little,
                b'B' => Endian::Big,
                _ => return None,
            };
            let (kind, version) = (*m.get(1)?, *m.get(3)?);
            if !(1..=4).contains(&kind) || version != 1 {
                return None;
            }
            let mut c = Cursor { buf: m, pos: 4, endian };
            let body_len = c.u32()?;
            let serial = c.u32()?;
            let fields_len = c.u32()?;
            if serial == 0 || fields_len >= MAX_ARRAY {
                return None;
            }
            let body_start = (16 + u64::from(fields_len)).next_multiple_of(8);
            let total = body_start + u64::from(body_len);
            if total > MAX_MESSAGE {
                return None;
            }
            let (total, body_start, fields_end) = (total as usize, body_start as usize, 16 + fields_len as usize);
            if kind != 1 || fields_end > m.len() {
                return Some(Message { total, call: None });
            }
            let mut header = Header::default();
            let mut f = Cursor { buf: &m[..fields_end], pos: 16, endian };
            while f.pos < fields_end {
                if f.align(8).is_none() || f.pos >= fields_end {
                    break;
                }
                let Some(code) = f.take(1) else { break };
                let ty = match f.signature() {
                    Some(s) if s.len() == 1 => s.as_bytes()[0],
                    _ => return Some(Message { total, call: None }),
                };
                let value = match (code[0], ty) {
                    (1, b'o') | (2 | 3 | 6, b's') => f.string().map(Some),
                    (8, b'g') => f.signature().map(Some),
                    // The specification's own fields with another type make the message invalid.
                    (1..=9, _) if !matches!((code[0], ty), (4 | 7, b's') | (5 | 9, b'u')) => None,
                    _ => f.skip_basic(ty).map(|_| None),
                };
                let Some(value) = value else { return Some(Message { total, call: None }) };
                match code[0] {
                    1 => header.path = value,
                    2 => header.interface = value,
                    3 => header.member = value,
                    6 => header.destination = value,
                    8 => header.signature = value,
                    _ => {}
                }
            }
            let body_end = total.min(m.len());
            let body = Cursor { buf: m.get(body_start..body_end).unwrap_or_default(), pos: 0, endian };
            Some(Message { total, call: Some((header, body)) })
        }

        fn request(&self, socket: Socket) -> Option<Request> {
            let (h, body) = self.call.as_ref()?;
            let to_systemd = match (socket, h.destination) {
                (_, Some(d)) => d == DESTINATION,
                // On systemd's own socket there is no one else to talk to.
                (Socket::SystemdPrivate, None) => true,
                _ => false,
            };
            if !to_systemd {
                return None;
            }
            let (path, member) = (h.path?, h.member?);
            let (unit, methods) = if path == MANAGER_PATH && h.interface.is_none_or(|i| i == MANAGER) {
                (None, MANAGER_METHODS)
            } else if let Some(label) = path.strip_prefix(UNIT_PREFIX)
                && h.interface.is_none_or(|i| i == UNIT)
            {
                (Some(unit_name(label)?), UNIT_METHODS)
            } else {
                return None;
            };
            let &(_, signature, args) = methods.iter().find(|(name, ..)| *name == member)?;
            if h.signature.unwrap_or_default() != signature {
                return None;
            }
            let mut r = request(member, unit.unwrap_or_default());
            let mut body = Cursor { buf: body.buf, pos: 0, endian: body.endian };
            // A job type decides whether the call stops anything: unread, it is not a stop.
            let mut stops = !args.iter().any(|a| matches!(a, Arg::JobType));
            for (ty, arg) in signature.bytes().zip(args.iter()) {
                // A body cut short leaves the arguments that follow unknown, not absent.
                let value = match ty {
                    b'i' => body.u32().map(|n| Value::Int(n as i32)),
                    _ => body.string().map(Value::Str),
                };
                match (arg, value) {
                    (_, None) => break,
                    (Arg::Unit, Some(Value::Str(s))) => r.object = s.to_string(),
                    (Arg::Mode, Some(Value::Str(s))) => r.mode = Some(s.to_string()),
                    (Arg::JobType, Some(Value::Str(s))) => stops = STOPPING_JOBS.contains(&s),
                    (Arg::Signal, Some(Value::Int(n))) => r.signal = Some(valid_signal(n.into())?),
                    _ => {}
                }
            }
            // An empty name is the caller's own unit, which these bytes cannot name.
            (stops && !r.object.is_empty()).then_some(r)
        }
    }

    /// The unit a bus path names: systemd escapes every byte outside [A-Za-z0-9] as `_xx` and keeps
    /// an `_` that does not start such an escape (bus_label_unescape).
    pub(super) fn unit_name(label: &str) -> Option<String> {
        let b = label.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
            match (b[i], hex(i + 1), hex(i + 2)) {
                (b'_', Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                }
                (c, ..) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        let name = String::from_utf8(out).ok()?;
        // "self" is the caller's unit; a '/' or no '.' is not a unit at all.
        (label != "self" && !label.contains('/') && name.contains('.') && !name.contains('\0')).then_some(name)
    }
}

mod http {
    //! Docker Engine API requests: HTTP/1.1 on dockerd's socket.

    use super::{Request, find, request, valid_signal};

    pub(super) fn parse(bytes: &[u8]) -> Vec<Request> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            // A request line is read only when it is whole: a URL cut short may have lost its query.
            let Some(line_end) = find(rest, b"\r\n") else { break };
            let Some((method, target)) = request_line(&rest[..line_end]) else { break };
            out.extend(api_request(method, target));
            let Some(head_end) = find(rest, b"\r\n\r\n") else { break };
            let Some(body) = body_length(&rest[line_end + 2..head_end + 2]) else { break };
            match (head_end + 4).checked_add(body) {
                Some(n) if n <= rest.len() => pos += n,
                _ => break,
            }
        }
        out
    }

    fn request_line(line: &[u8]) -> Option<(&str, &str)> {
        let line = std::str::from_utf8(line).ok()?;
        let mut parts = line.split(' ');
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        (parts.next().is_none() && version.starts_with("HTTP/1.") && target.starts_with('/'))
            .then_some((method, target))
    }

    /// The body's length from Content-Length; None when it cannot be skipped (chunked, or an invalid
    /// length), which ends the reading: what follows is not known to start a request.
    fn body_length(headers: &[u8]) -> Option<usize> {
        let mut len = 0;
        for line in headers.split(|&b| b == b'\n') {
            let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
            let Some((name, value)) = line.split_once(':') else { continue };
            if name.eq_ignore_ascii_case("transfer-encoding") {
                return None;
            }
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().ok()?;
            }
        }
        Some(len)
    }

    /// `POST [/vX.Y]/containers/NAME/{stop,kill,restart}` and a forced `DELETE [/vX.Y]/containers/NAME`.
    fn api_request(method: &str, target: &str) -> Option<Request> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut segs: Vec<&str> = path[1..].split('/').collect();
        if segs.first().is_some_and(|v| is_version(v)) {
            segs.remove(0);
        }
        let action = match (method, segs.as_slice()) {
            ("POST", ["containers", _, a @ ("stop" | "kill" | "restart")]) => *a,
            ("DELETE", ["containers", _]) => "remove",
            _ => return None,
        };
        let name = percent_decode(segs[1], false)?;
        if name.is_empty() || name.contains('/') {
            return None;
        }
        let mut r = request(action, name);
        let mut force = false;
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (percent_decode(k, true)?, percent_decode(v, true)?);
            // Go's Form.Get, which dockerd reads parameters with, takes the first value.
            if seen.contains(&k) {
                continue;
            }
            match (action, k.as_str()) {
                ("stop" | "restart", "t" | "timeout") if !v.is_empty() => {
                    // dockerd answers 400 to a timeout that is not a number, and stops nothing.
                    r.timeout_s = Some(v.trim().parse().ok()?);
                }
                ("stop" | "restart" | "kill", "signal") if !v.is_empty() => {
                    let n = crate::signals::parse(&v).ok()?;
                    r.signal = Some(valid_signal(n.into())?);
                }
                ("remove", "force") => force = go_bool(&v),
                _ => {}
            }
            seen.push(k);
        }
        // Removing a container stops it only when forced; otherwise dockerd refuses a running one.
        (action != "remove" || force).then_some(r)
    }

    /// The API version prefix: `v1.47`, `v1`.
    fn is_version(s: &str) -> bool {
        s.strip_prefix('v').is_some_and(|v| {
            !v.is_empty() && v.split('.').all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    }

    /// dockerd's httputils.BoolValue.
    fn go_bool(v: &str) -> bool {
        !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "no" | "false" | "none")
    }

    /// %XX escapes (and `+` for a space in a query, as Go's ParseQuery reads it); None for a bad
    /// escape or a result that is not UTF-8, which dockerd would reject too.
    fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
                    out.push((hex(i + 1)? * 16 + hex(i + 2)?) as u8);
                    i += 3;
                }
                b'+' if plus_is_space => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).ok()
    }
}

mod grpc {
    //! gRPC over HTTP/2 on containerd's socket: the containerd API and the CRI.

    use super::{Request, hpack, request, valid_signal};

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    /// SETTINGS_MAX_FRAME_SIZE's initial value: containerd's server never raises it, so a longer
    /// frame means the bytes are not a frame boundary.
    const MAX_FRAME: usize = 16384;

    /// (path, method, what the body's fields carry). The two Delete methods are named after their
    /// request types, since both last parts read "Delete" and name different objects' ends; a
    /// delete closes the stop the same client's Kill began (`ctr task rm -f`), and the CRI's
    /// removes stop a running container or pod by contract.
    const METHODS: &[(&str, &str, Body)] = &[
        ("/containerd.services.tasks.v1.Tasks/Kill", "Kill", Body::Kill),
        ("/containerd.services.tasks.v1.Tasks/Delete", "DeleteTask", Body::Id),
        ("/containerd.services.containers.v1.Containers/Delete", "DeleteContainer", Body::Id),
        ("/runtime.v1.RuntimeService/StopContainer", "StopContainer", Body::Stop),
        ("/runtime.v1.RuntimeService/RemoveContainer", "RemoveContainer", Body::Id),
        ("/runtime.v1.RuntimeService/StopPodSandbox", "StopPodSandbox", Body::Id),
        ("/runtime.v1.RuntimeService/RemovePodSandbox", "RemovePodSandbox", Body::Id),
        ("/runtime.v1alpha2.RuntimeService/StopContainer", "StopContainer", Body::Stop),
        ("/runtime.v1alpha2.RuntimeService/RemoveContainer", "RemoveContainer", Body::Id),
        ("/runtime.v1alpha2.RuntimeService/StopPodSandbox", "StopPodSandbox", Body::Id),
        ("/runtime.v1alpha2.RuntimeService/RemovePodSandbox", "RemovePodSandbox", Body::Id),
    ];

    #[derive(Clone, Copy, PartialEq)]
    enum Body {
        /// KillRequest: container_id = 1, exec_id = 2, signal = 3, all = 4.
        Kill,
        /// StopContainerRequest: container_id = 1, timeout = 2 (int64).
        Stop,
        /// Field 1 is the object: DeleteTaskRequest.container_id, DeleteContainerRequest.id,
        /// RemoveContainerRequest.container_id, Stop/RemovePodSandboxRequest.pod_sandbox_id.
        Id,
    }

    struct Stream {
        id: u32,
        path: hpack::Path,
        /// DATA payloads, padding removed, in order.
        data: Vec<u8>,
        /// Its header block, while CONTINUATION frames may still add to it.
        block: Option<Vec<u8>>,
    }

    pub(super) fn parse(bytes: &[u8]) -> Vec<Request> {
        streams(bytes).iter().filter_map(|s| call(&s.path, &s.data)).collect()
    }

    pub(super) fn unread_ids(bytes: &[u8]) -> Vec<String> {
        streams(bytes)
            .iter()
            .filter(|s| matches!(s.path, hpack::Path::Unknown | hpack::Path::NotHere))
            .filter(|s| call(&s.path, &s.data).is_none())
            .filter_map(|s| {
                let msg = s.data.get(5..)?;
                let id = Fields::read(msg).last_bytes(1)?;
                (id.len() == 64 && id.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
                    .then(|| String::from_utf8_lossy(id).into_owned())
            })
            .collect()
    }

    /// The client's streams in a write: each one's path and DATA, as far as the frames read.
    fn streams(bytes: &[u8]) -> Vec<Stream> {
        let mut pos = 0;
        if bytes.starts_with(PREFACE) {
            pos = PREFACE.len();
        }
        let mut streams: Vec<Stream> = Vec::new();
        while let Some(h) = bytes.get(pos..pos + 9) {
            let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            let (kind, flags) = (h[3], h[4]);
            let raw_id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
            let id = raw_id & 0x7fff_ffff;
            // A client's frames, as the RFC has them: the streams it opens are odd, SETTINGS, PING
            // and GOAWAY are on stream 0, WINDOW_UPDATE on either, and the reserved bit is clear.
            let stream_ok = match kind {
                0 | 1 | 2 | 3 | 9 => id % 2 == 1,
                4 | 6 | 7 => id == 0,
                8 => id == 0 || id % 2 == 1,
                _ => false,
            };
            if raw_id != id || len > MAX_FRAME || !stream_ok {
                break;
            }
            let payload = &bytes[pos + 9..(pos + 9 + len).min(bytes.len())];
            let cut = payload.len() < len;
            let open = streams.iter().any(|s| s.block.is_some());
            // Nothing may come between a header block's frames.
            if open != (kind == 9) {
                break;
            }
            match kind {
                0 | 1 => {
                    let Some(fragment) = unpad(payload, len, flags, kind == 1) else { break };
                    let s = match streams.iter().position(|s| s.id == id) {
                        Some(i) => &mut streams[i],
                        None => {
                            streams.push(Stream { id, path: hpack::Path::NotHere, data: Vec::new(), block: None });
                            streams.last_mut().expect("just pushed")
                        }
                    };
                    if kind == 0 {
                        s.data.extend_from_slice(fragment);
                    } else {
                        s.block = Some(fragment.to_vec());
                    }
                }
                9 => {
                    let Some(s) = streams.iter_mut().find(|s| s.id == id && s.block.is_some()) else { break };
                    s.block.as_mut().expect("checked").extend_from_slice(payload);
                }
                _ => {}
            }
            // A header block ends with END_HEADERS, or where the capture does.
            if matches!(kind, 1 | 9)
                && (flags & 0x4 != 0 || cut)
                && let Some(s) = streams.iter_mut().find(|s| s.id == id)
                && let Some(block) = s.block.take()
            {
                s.path = hpack::path(&block);
            }
            if cut {
                break;
            }
            pos += 9 + len;
        }
        streams
    }

    /// A DATA or HEADERS frame's content: without its padding and, for HEADERS, its priority.
    fn unpad(payload: &[u8], len: usize, flags: u8, headers: bool) -> Option<&[u8]> {
        let mut start = 0;
        let mut pad = 0;
        if flags & 0x8 != 0 {
            pad = usize::from(*payload.first()?);
            start = 1;
        }
        if headers && flags & 0x20 != 0 {
            start += 5;
        }
        let end = len.checked_sub(pad)?.min(payload.len());
        (start <= len.checked_sub(pad)?).then(|| payload.get(start..end.max(start))).flatten()
    }

    /// The request a stream's path and first gRPC message make, if they stop or signal something.
    fn call(path: &hpack::Path, data: &[u8]) -> Option<Request> {
        // The gRPC message: an uncompressed flag, a big-endian length, the protobuf.
        let (&compressed, rest) = data.split_first()?;
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        if compressed != 0 {
            return None;
        }
        let msg = &rest[4..];
        let whole = msg.len() >= len;
        let fields = Fields::read(&msg[..len.min(msg.len())]);
        match path {
            hpack::Path::Found(p) => {
                let &(_, method, body) = METHODS.iter().find(|(path, ..)| path == p)?;
                read_body(method, body, &fields, whole)
            }
            hpack::Path::Unknown | hpack::Path::NotHere if whole && !fields.cut => infer(&fields),
            _ => None,
        }
    }

    fn read_body(method: &str, body: Body, fields: &Fields, whole: bool) -> Option<Request> {
        let object = std::str::from_utf8(fields.last_bytes(1)?).ok().filter(|s| !s.is_empty())?;
        let mut r = request(method, object.to_string());
        // A field missing from a whole message holds proto3's default; from a cut one, it is unknown.
        let complete = whole && !fields.cut;
        match body {
            Body::Kill => match fields.last_varint(3) {
                Some(n) => r.signal = Some(valid_signal(n as i64)?),
                // Signal 0 only checks that the process exists.
                None if complete => return None,
                None => {}
            },
            Body::Stop => match fields.last_varint(2) {
                Some(n) => r.timeout_s = Some(n as i64),
                None if complete => r.timeout_s = Some(0),
                None => {}
            },
            Body::Id => {}
        }
        Some(r)
    }

    /// A body whose method path is not in the capture, read only when its shape admits no other
    /// method on this socket:
    /// - Kill: exactly a 64-hex container ID (1), a signal (3) from 2 to 64 and maybe `all` (4).
    ///   No exec_id (2): a field 2 string with a varint 3 is also ExecSync's (cmd, timeout).
    ///   Signal 1 is left out: Tasks/CloseIO's (container_id, stdin = true) reads the same.
    /// - StopContainer: exactly a 64-hex ID (1) and a timeout (2) of at least 2 seconds: a 0 or 1
    ///   there is also ContainerStatus' and PodSandboxStatus' `verbose` flag.
    fn infer(fields: &Fields) -> Option<Request> {
        let id = fields
            .last_bytes(1)
            .filter(|b| b.len() == 64 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))?;
        let id = std::str::from_utf8(id).ok()?.to_string();
        let numbers: Vec<u32> = fields.list.iter().map(|(n, _)| *n).collect();
        let varint = |n| fields.last_varint(n);
        let mut r = match numbers.as_slice() {
            [1, 3] | [1, 3, 4]
                if varint(3).is_some_and(|s| (2..=64).contains(&s)) && varint(4).is_none_or(|a| a <= 1) =>
            {
                let mut r = request("Kill", id);
                r.signal = Some(varint(3)? as i32);
                r
            }
            [1, 2] if varint(2).is_some_and(|t| (2..=i64::MAX as u64).contains(&t)) => {
                let mut r = request("StopContainer", id);
                r.timeout_s = Some(varint(2)? as i64);
                r
            }
            _ => return None,
        };
        r.inferred = true;
        Some(r)
    }

    enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        Fixed,
    }

    /// A protobuf message's top-level fields, in order, up to where it stops being readable.
    struct Fields<'a> {
        list: Vec<(u32, Value<'a>)>,
        /// The message ended inside a field (or was not protobuf from there on).
        cut: bool,
    }

    impl<'a> Fields<'a> {
        fn read(mut b: &'a [u8]) -> Fields<'a> {
            let mut list = Vec::new();
            while !b.is_empty() {
                let Some(field) = Self::field(&mut b) else { return Fields { list, cut: true } };
                list.push(field);
            }
            Fields { list, cut: false }
        }

        fn field(b: &mut &'a [u8]) -> Option<(u32, Value<'a>)> {
            let key = varint(b)?;
            let number = u32::try_from(key >> 3).ok().filter(|n| *n != 0)?;
            let value = match key & 7 {
                0 => Value::Varint(varint(b)?),
                1 | 5 => {
                    let n = if key & 7 == 1 { 8 } else { 4 };
                    *b = b.get(n..)?;
                    Value::Fixed
                }
                2 => {
                    let n = usize::try_from(varint(b)?).ok()?;
                    let (v, rest) = (b.get(..n)?, b.get(n..)?);
                    *b = rest;
                    Value::Bytes(v)
                }
                _ => return None,
            };
            Some((number, value))
        }

        /// Proto3 keeps a repeated scalar field's last value.
        fn last_varint(&self, n: u32) -> Option<u64> {
            self.list.iter().rev().find(|(f, _)| *f == n).and_then(|(_, v)| match v {
                Value::Varint(x) => Some(*x),
                _ => None,
            })
        }

        fn last_bytes(&self, n: u32) -> Option<&'a [u8]> {
            self.list.iter().rev().find(|(f, _)| *f == n).and_then(|(_, v)| match v {
                Value::Bytes(x) => Some(*x),
                _ => None,
            })
        }
    }

    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut x = 0u64;
        for i in 0..10 {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            x |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(x);
            }
        }
        None
    }
}

mod hpack {
    //! The `:path` of an HTTP/2 header block (RFC 7541), without the connection's dynamic table.

    /// Where a stream's method path stands in the capture.
    pub(super) enum Path {
        /// Read from a literal, or the static table's `/` or `/index.html`.
        Found(String),
        /// Not read: some field came from the dynamic table, and it may be the path.
        Unknown,
        /// The stream's header block is not in the capture.
        NotHere,
        /// A whole block without a path, or one that is not HPACK: not a request.
        None,
    }

    /// The static table's `:path` entries (RFC 7541 Appendix A).
    const STATIC_PATHS: [(usize, &str); 2] = [(4, "/"), (5, "/index.html")];
    const STATIC_LEN: usize = 61;

    pub(super) fn path(mut b: &[u8]) -> Path {
        let mut unknown = false;
        while let Some(&first) = b.first() {
            let field = if first & 0x80 != 0 {
                match int(&mut b, 7) {
                    Some(i) => match STATIC_PATHS.iter().find(|(n, _)| *n == i) {
                        Some((_, p)) => return Path::Found(p.to_string()),
                        None if i == 0 => return Path::None,
                        None => {
                            unknown |= i > STATIC_LEN;
                            continue;
                        }
                    },
                    None => None,
                }
            } else if first & 0xe0 == 0x20 {
                // A dynamic table size update.
                int(&mut b, 5).map(|_| None)
            } else {
                let prefix = if first & 0x40 != 0 { 6 } else { 4 };
                literal(&mut b, prefix).map(Some)
            };
            match field {
                // The block stops being readable: whatever it held further is not in these bytes.
                None => return Path::Unknown,
                Some(None) => {}
                Some(Some((Name::Path, value))) => {
                    return match String::from_utf8(value) {
                        Ok(p) => Path::Found(p),
                        Err(_) => Path::None,
                    };
                }
                Some(Some((Name::Dynamic, _))) => unknown = true,
                Some(Some((Name::Other, _))) => {}
            }
        }
        if unknown { Path::Unknown } else { Path::None }
    }

    enum Name {
        Path,
        Other,
        /// A name from the dynamic table, which may be `:path`.
        Dynamic,
    }

    /// A literal field: its name's index (0: a literal name follows), then the value.
    fn literal(b: &mut &[u8], prefix: u32) -> Option<(Name, Vec<u8>)> {
        let name = match int(b, prefix)? {
            0 => match string(b)?.as_slice() {
                b":path" => Name::Path,
                _ => Name::Other,
            },
            i if STATIC_PATHS.iter().any(|(n, _)| *n == i) => Name::Path,
            i if i <= STATIC_LEN => Name::Other,
            _ => Name::Dynamic,
        };
        Some((name, string(b)?))
    }

    /// An integer with an N-bit prefix (RFC 7541 5.1); None past 2^28, which no real field reaches.
    fn int(b: &mut &[u8], prefix: u32) -> Option<usize> {
        let (&first, rest) = b.split_first()?;
        *b = rest;
        let max = (1usize << prefix) - 1;
        let mut x = usize::from(first) & max;
        if x < max {
            return Some(x);
        }
        for shift in (0..28).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            x += usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(x);
            }
        }
        None
    }

    /// A string literal (RFC 7541 5.2), Huffman-decoded when flagged.
    fn string(b: &mut &[u8]) -> Option<Vec<u8>> {
        let huffman = b.first()? & 0x80 != 0;
        let len = int(b, 7)?;
        let (s, rest) = (b.get(..len)?, b.get(len..)?);
        *b = rest;
        if huffman { super::huffman::decode(s) } else { Some(s.to_vec()) }
    }
}

mod huffman {
    //! HPACK's Huffman code (RFC 7541 Appendix B). The code is canonical — codes of one length are
    //! consecutive, in symbol order, following the shorter ones — so the lengths alone define it.

    /// Code lengths of bytes 0..=255; the EOS symbol (256) is 30 ones.
    const LENGTHS: [u8; 256] = [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28,
        28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15,
        6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22,
        20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23,
        23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22,
        22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26,
        27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27,
        26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    ];
    const EOS: u16 = 256;
    const MAX_LEN: usize = 30;

    #[cfg(test)]
    fn length(sym: u16) -> usize {
        if sym == EOS { MAX_LEN } else { usize::from(LENGTHS[usize::from(sym)]) }
    }

    /// For each length: its first code, how many codes it has, and where its symbols start in
    /// `symbols` (sorted by length, then value).
    struct Canonical {
        first: [u32; MAX_LEN + 1],
        count: [u32; MAX_LEN + 1],
        start: [u16; MAX_LEN + 1],
        symbols: [u16; 257],
    }

    static CANONICAL: Canonical = {
        let mut c =
            Canonical { first: [0; MAX_LEN + 1], count: [0; MAX_LEN + 1], start: [0; MAX_LEN + 1], symbols: [0; 257] };
        let (mut len, mut code, mut next) = (1, 0u32, 0u16);
        while len <= MAX_LEN {
            c.first[len] = code;
            c.start[len] = next;
            let mut sym = 0;
            while sym <= EOS {
                let l = if sym == EOS { MAX_LEN } else { LENGTHS[sym as usize] as usize };
                if l == len {
                    c.symbols[next as usize] = sym;
                    next += 1;
                    c.count[len] += 1;
                }
                sym += 1;
            }
            code = (code + c.count[len]) << 1;
            len += 1;
        }
        c
    };

    /// None for an invalid string: EOS inside it, or padding that is not a short prefix of EOS
    /// (RFC 7541 5.2).
    pub(super) fn decode(src: &[u8]) -> Option<Vec<u8>> {
        let c = &CANONICAL;
        // Every code is at least 5 bits long.
        let mut out = Vec::with_capacity(src.len() * 8 / 5);
        let (mut code, mut len) = (0u32, 0usize);
        for byte in src {
            for bit in (0..8).rev() {
                code = code << 1 | u32::from(byte >> bit & 1);
                len += 1;
                let offset = code.wrapping_sub(c.first[len]);
                if offset < c.count[len] {
                    let sym = c.symbols[usize::from(c.start[len]) + offset as usize];
                    out.push(u8::try_from(sym).ok()?);
                    (code, len) = (0, 0);
                } else if len == MAX_LEN {
                    return None;
                }
            }
        }
        (len < 8 && code == (1 << len) - 1).then_some(out)
    }

    #[cfg(test)]
    pub(super) fn encode(src: &[u8]) -> Vec<u8> {
        let c = &CANONICAL;
        let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
        for &b in src {
            let sym = u16::from(b);
            let len = length(sym);
            let rank = c.symbols[usize::from(c.start[len])..].iter().position(|s| *s == sym).expect("in table");
            acc = acc << len | u64::from(c.first[len] + rank as u32);
            bits += len as u32;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push((acc << (8 - bits)) as u8 | (0xff >> bits));
        }
        out
    }

    #[cfg(test)]
    pub(super) fn kraft_sum() -> u64 {
        (0..=EOS).map(|s| 1u64 << (MAX_LEN - length(s))).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes recorded with `strace -e write,writev,sendmsg,sendto -xx` on real clients (systemd
    /// 252's systemctl and busctl, libdbus 1.14's dbus-send, Docker CLI 28.2, ctr 1.6.20 with
    /// grpc-go 1.33), each talking to a stand-in for its manager that answered just enough for the
    /// client to send its request: a dbus-daemon, a SASL-only stand-in for systemd's private socket
    /// (systemctl as root in a mount namespace where /run/systemd/system exists), an HTTP
    /// responder, and an HTTP/2 responder that answered containerd's Get calls. One constant is
    /// one syscall's bytes unless its comment says otherwise; the container ID is 64 hex digits,
    /// as containerd's are.
    mod captures {
        /// sd-bus's SASL exchange, one write (systemctl and busctl, systemd 252).
        pub(super) const SD_SASL: &str =
            "00415554482045585445524e414c0d0a444154410d0a4e45474f54494154455f554e49585f46440d0a424547494e0d0a";

        /// `systemctl stop nginx.service` as root on the private socket.
        pub(super) const SC_STOP: &str = concat!(
            "6c0104012000000001000000a000000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173000800000053746f70556e6974000000000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373000d0000006e67696e782e736572766963",
            "65000000070000007265706c61636500",
        );

        /// `systemctl restart nginx.service`.
        pub(super) const SC_RESTART: &str = concat!(
            "6c0104012000000001000000a000000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173000b00000052657374617274556e6974000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373000d0000006e67696e782e736572766963",
            "65000000070000007265706c61636500",
        );

        /// `systemctl try-restart nginx.service`.
        pub(super) const SC_TRY_RESTART: &str = concat!(
            "6c0104012000000001000000a000000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173000e00000054727952657374617274556e6974000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373000d0000006e67696e782e736572766963",
            "65000000070000007265706c61636500",
        );

        /// `systemctl reload-or-restart nginx.service`.
        pub(super) const SC_RELOAD_OR_RESTART: &str = concat!(
            "6c0104012000000001000000a800000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173001300000052656c6f61644f7252657374617274556e697400000000000201730020000000",
            "6f72672e667265656465736b746f702e73797374656d64312e4d616e6167657200000000000000000601730018000000",
            "6f72672e667265656465736b746f702e73797374656d6431000000000000000008016700027373000d0000006e67696e",
            "782e73657276696365000000070000007265706c61636500",
        );

        /// `systemctl kill -s KILL nginx.service`.
        pub(super) const SC_KILL: &str = concat!(
            "6c0104012000000001000000a100000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000003017300080000004b696c6c556e6974000000000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d64310000000000000000080167000373736900000000000000000d0000006e67696e",
            "782e7365727669636500000003000000616c6c0009000000",
        );

        /// `systemctl kill --kill-whom=main -s HUP web-app.service`.
        pub(super) const SC_KILL_MAIN: &str = concat!(
            "6c0104012400000001000000a100000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000003017300080000004b696c6c556e6974000000000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d64310000000000000000080167000373736900000000000000000f0000007765622d",
            "6170702e7365727669636500040000006d61696e0000000001000000",
        );

        /// `systemctl stop session-4.scope`.
        pub(super) const SC_STOP_SCOPE: &str = concat!(
            "6c0104012000000001000000a000000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173000800000053746f70556e6974000000000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373000f00000073657373696f6e2d342e7363",
            "6f706500070000007265706c61636500",
        );

        /// `systemctl start nginx.service`.
        pub(super) const SC_START: &str = concat!(
            "6c0104012000000001000000a000000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000003017300090000005374617274556e69740000000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373000d0000006e67696e782e736572766963",
            "65000000070000007265706c61636500",
        );

        /// `systemctl status nginx.service` (GetAll on the unit).
        pub(super) const SC_STATUS: &str = concat!(
            "6c01040105000000010000009f00000001016f002e0000002f6f72672f667265656465736b746f702f73797374656d64",
            "312f756e69742f6e67696e785f32657365727669636500000301730006000000476574416c6c0000020173001f000000",
            "6f72672e667265656465736b746f702e444275732e50726f706572746965730006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700017300000000000000",
        );

        /// `systemctl list-units`.
        pub(super) const SC_LIST: &str = concat!(
            "6c0104010800000001000000aa00000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000003017300130000004c697374556e69747342795061747465726e7300000000000201730020000000",
            "6f72672e667265656465736b746f702e73797374656d64312e4d616e6167657200000000000000000601730018000000",
            "6f72672e667265656465736b746f702e73797374656d6431000000000000000008016700046173617300000000000000",
            "0000000000000000",
        );

        /// `systemctl is-active nginx.service`.
        pub(super) const SC_IS_ACTIVE: &str = concat!(
            "6c0104013400000001000000a000000001016f002e0000002f6f72672f667265656465736b746f702f73797374656d64",
            "312f756e69742f6e67696e785f326573657276696365000003017300030000004765740000000000020173001f000000",
            "6f72672e667265656465736b746f702e444275732e50726f706572746965730006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373001d0000006f72672e667265656465736b",
            "746f702e73797374656d64312e556e69740000000b000000416374697665537461746500",
        );

        /// `systemctl show -p MainPID nginx.service`.
        pub(super) const SC_SHOW: &str = concat!(
            "6c01040105000000010000009f00000001016f002e0000002f6f72672f667265656465736b746f702f73797374656d64",
            "312f756e69742f6e67696e785f32657365727669636500000301730006000000476574416c6c0000020173001f000000",
            "6f72672e667265656465736b746f702e444275732e50726f706572746965730006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700017300000000000000",
        );

        /// sd-bus's Hello to the bus daemon.
        pub(super) const BUS_HELLO: &str = concat!(
            "6c01000100000000010000006d00000001016f00150000002f6f72672f667265656465736b746f702f44427573000000",
            "030173000500000048656c6c6f00000002017300140000006f72672e667265656465736b746f702e4442757300000000",
            "06017300140000006f72672e667265656465736b746f702e4442757300000000",
        );

        /// systemctl (non-root, on the system bus) subscribing to JobRemoved: AddMatch to the bus daemon.
        pub(super) const SCU_ADD_MATCH: &str = concat!(
            "6c01040196000000020000007f00000001016f00150000002f6f72672f667265656465736b746f702f44427573000000",
            "03017300080000004164644d61746368000000000000000002017300140000006f72672e667265656465736b746f702e",
            "444275730000000006017300140000006f72672e667265656465736b746f702e44427573000000000801670001730000",
            "91000000747970653d277369676e616c272c73656e6465723d276f72672e667265656465736b746f702e73797374656d",
            "6431272c706174683d272f6f72672f667265656465736b746f702f73797374656d6431272c696e746572666163653d27",
            "6f72672e667265656465736b746f702e73797374656d64312e4d616e61676572272c6d656d6265723d274a6f6252656d",
            "6f7665642700",
        );

        /// `systemctl stop nginx.service` as nobody, through the system bus.
        pub(super) const SCU_STOP: &str = concat!(
            "6c0104012000000003000000a000000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173000800000053746f70556e6974000000000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373000d0000006e67696e782e736572766963",
            "65000000070000007265706c61636500",
        );

        /// `systemctl kill -s TERM nginx.service` as nobody, through the system bus.
        pub(super) const SCU_KILL: &str = concat!(
            "6c0104012000000002000000a100000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000003017300080000004b696c6c556e6974000000000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d64310000000000000000080167000373736900000000000000000d0000006e67696e",
            "782e7365727669636500000003000000616c6c000f000000",
        );

        /// `busctl call … Manager KillUnit ssi nginx.service all 9`.
        pub(super) const BC_KILL_UNIT: &str = concat!(
            "6c0104012000000002000000a100000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000003017300080000004b696c6c556e6974000000000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d64310000000000000000080167000373736900000000000000000d0000006e67696e",
            "782e7365727669636500000003000000616c6c0009000000",
        );

        /// `busctl call … Manager QueueSignalUnit ssii nginx.service main 35 7`.
        pub(super) const BC_QUEUE_SIGNAL_UNIT: &str = concat!(
            "6c0104012800000002000000a200000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173000f00000051756575655369676e616c556e69740002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d64310000000000000000080167000473736969000000000000000d0000006e67696e",
            "782e73657276696365000000040000006d61696e000000002300000007000000",
        );

        /// `busctl call … Manager EnqueueUnitJob sss nginx.service restart replace`.
        pub(super) const BC_ENQUEUE_RESTART: &str = concat!(
            "6c0104012c00000002000000a100000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173000e000000456e7175657565556e69744a6f62000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d64310000000000000000080167000373737300000000000000000d0000006e67696e",
            "782e73657276696365000000070000007265737461727400070000007265706c61636500",
        );

        /// `busctl call … Manager EnqueueUnitJob sss nginx.service start replace`.
        pub(super) const BC_ENQUEUE_START: &str = concat!(
            "6c0104012c00000002000000a100000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173000e000000456e7175657565556e69744a6f62000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d64310000000000000000080167000373737300000000000000000d0000006e67696e",
            "782e73657276696365000000050000007374617274000000070000007265706c61636500",
        );

        /// `busctl call … Manager ReloadOrTryRestartUnit ss nginx.service fail`.
        pub(super) const BC_RELOAD_OR_TRY_RESTART: &str = concat!(
            "6c0104011d00000002000000a800000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "3100000000000000030173001600000052656c6f61644f7254727952657374617274556e697400000201730020000000",
            "6f72672e667265656465736b746f702e73797374656d64312e4d616e6167657200000000000000000601730018000000",
            "6f72672e667265656465736b746f702e73797374656d6431000000000000000008016700027373000d0000006e67696e",
            "782e73657276696365000000040000006661696c00",
        );

        /// `busctl call … Manager KillUnitSubgroup sssi nginx.service cgroup sub 15`.
        pub(super) const BC_KILL_SUBGROUP: &str = concat!(
            "6c0104012c00000002000000aa00000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000003017300100000004b696c6c556e697453756267726f757000000000000000000201730020000000",
            "6f72672e667265656465736b746f702e73797374656d64312e4d616e6167657200000000000000000601730018000000",
            "6f72672e667265656465736b746f702e73797374656d6431000000000000000008016700047373736900000000000000",
            "0d0000006e67696e782e73657276696365000000060000006367726f7570000003000000737562000f000000",
        );

        /// `busctl call … Manager GetUnit s nginx.service`.
        pub(super) const BC_GET_UNIT: &str = concat!(
            "6c01040112000000020000009700000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "31000000000000000301730007000000476574556e69740002017300200000006f72672e667265656465736b746f702e",
            "73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e667265656465736b746f702e",
            "73797374656d6431000000000000000008016700017300000d0000006e67696e782e7365727669636500",
        );

        /// `busctl call … Manager ListUnits`.
        pub(super) const BC_LIST_UNITS: &str = concat!(
            "6c01040100000000020000009100000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000003017300090000004c697374556e6974730000000000000002017300200000006f72672e66726565",
            "6465736b746f702e73797374656d64312e4d616e61676572000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d64310000000000000000",
        );

        /// `busctl call … /org/freedesktop/systemd1/unit/nginx_2eservice …Unit Stop s replace`.
        pub(super) const BC_UNIT_STOP: &str = concat!(
            "6c0104010c000000020000009f00000001016f002e0000002f6f72672f667265656465736b746f702f73797374656d64",
            "312f756e69742f6e67696e785f3265736572766963650000030173000400000053746f7000000000020173001d000000",
            "6f72672e667265656465736b746f702e73797374656d64312e556e697400000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d643100000000000000000801670001730000070000007265706c61636500",
        );

        /// `busctl call … /org/freedesktop/systemd1/unit/getty_40tty1_2eservice …Unit Kill si all 15`.
        pub(super) const BC_UNIT_KILL: &str = concat!(
            "6c0104010c00000002000000a800000001016f00350000002f6f72672f667265656465736b746f702f73797374656d64",
            "312f756e69742f67657474795f3430747479315f32657365727669636500000003017300040000004b696c6c00000000",
            "020173001d0000006f72672e667265656465736b746f702e73797374656d64312e556e69740000000601730018000000",
            "6f72672e667265656465736b746f702e73797374656d64310000000000000000080167000273690003000000616c6c00",
            "0f000000",
        );

        /// `busctl call … /org/freedesktop/systemd1/unit/my_2dapp_2eservice …Unit Restart s replace`.
        pub(super) const BC_UNIT_RESTART: &str = concat!(
            "6c0104010c00000002000000a700000001016f00310000002f6f72672f667265656465736b746f702f73797374656d64",
            "312f756e69742f6d795f32646170705f3265736572766963650000000000000003017300070000005265737461727400",
            "020173001d0000006f72672e667265656465736b746f702e73797374656d64312e556e69740000000601730018000000",
            "6f72672e667265656465736b746f702e73797374656d643100000000000000000801670001730000070000007265706c",
            "61636500",
        );

        /// `busctl call … /org/freedesktop/systemd1/unit/nginx_2eservice …Unit EnqueueJob ss stop fail`.
        pub(super) const BC_UNIT_ENQUEUE_STOP: &str = concat!(
            "6c0104011500000002000000a800000001016f002e0000002f6f72672f667265656465736b746f702f73797374656d64",
            "312f756e69742f6e67696e785f3265736572766963650000030173000a000000456e71756575654a6f62000000000000",
            "020173001d0000006f72672e667265656465736b746f702e73797374656d64312e556e69740000000601730018000000",
            "6f72672e667265656465736b746f702e73797374656d6431000000000000000008016700027373000400000073746f70",
            "00000000040000006661696c00",
        );

        /// `busctl call … /org/freedesktop/systemd1/unit/nginx_2eservice …Unit QueueSignal sii main 34 1`.
        pub(super) const BC_UNIT_QUEUE_SIGNAL: &str = concat!(
            "6c0104011400000002000000a900000001016f002e0000002f6f72672f667265656465736b746f702f73797374656d64",
            "312f756e69742f6e67696e785f3265736572766963650000030173000b00000051756575655369676e616c0000000000",
            "020173001d0000006f72672e667265656465736b746f702e73797374656d64312e556e69740000000601730018000000",
            "6f72672e667265656465736b746f702e73797374656d6431000000000000000008016700037369690000000000000000",
            "040000006d61696e000000002200000001000000",
        );

        /// `busctl get-property … nginx_2eservice …Unit ActiveState`.
        pub(super) const BC_GET_PROPERTY: &str = concat!(
            "6c0100013400000002000000a000000001016f002e0000002f6f72672f667265656465736b746f702f73797374656d64",
            "312f756e69742f6e67696e785f326573657276696365000003017300030000004765740000000000020173001f000000",
            "6f72672e667265656465736b746f702e444275732e50726f706572746965730006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373001d0000006f72672e667265656465736b",
            "746f702e73797374656d64312e556e69740000000b000000416374697665537461746500",
        );

        /// libdbus: `dbus-send --address=… --dest=org.freedesktop.systemd1 … Manager.StopUnit string:nginx.service string:replace` (no Hello: a direct connection).
        pub(super) const DS_STOP: &str = concat!(
            "6c0100012000000001000000a000000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000002017300200000006f72672e667265656465736b746f702e73797374656d64312e4d616e61676572",
            "0000000000000000030173000800000053746f70556e6974000000000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373000d0000006e67696e782e736572766963",
            "65000000070000007265706c61636500",
        );

        /// libdbus's Hello (dbus-send --system).
        pub(super) const DS_SYSTEM_HELLO: &str = concat!(
            "6c01000100000000010000006e00000001016f00150000002f6f72672f667265656465736b746f702f44427573000000",
            "06017300140000006f72672e667265656465736b746f702e444275730000000002017300140000006f72672e66726565",
            "6465736b746f702e4442757300000000030173000500000048656c6c6f000000",
        );

        /// `dbus-send --system … Manager.RestartUnit string:nginx.service string:replace`.
        pub(super) const DS_SYSTEM_RESTART: &str = concat!(
            "6c0100012000000002000000a000000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
            "310000000000000002017300200000006f72672e667265656465736b746f702e73797374656d64312e4d616e61676572",
            "0000000000000000030173000b00000052657374617274556e6974000000000006017300180000006f72672e66726565",
            "6465736b746f702e73797374656d6431000000000000000008016700027373000d0000006e67696e782e736572766963",
            "65000000070000007265706c61636500",
        );

        /// The Docker CLI's first request on a connection.
        pub(super) const DK_PING: &str = concat!(
            "48454144202f5f70696e6720485454502f312e310d0a486f73743a206170692e6d6f62792e6c6f63616c686f73740d0a",
            "557365722d4167656e743a20446f636b65722d436c69656e742f32382e322e3220286c696e7578290d0a0d0a",
        );

        /// `docker stop -t 2 web` (Docker CLI 28.2, API 1.47).
        pub(super) const DK_STOP: &str = concat!(
            "504f5354202f76312e34372f636f6e7461696e6572732f7765622f73746f703f743d3220485454502f312e310d0a486f",
            "73743a206170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d436c69656e",
            "742f32382e322e3220286c696e7578290d0a436f6e74656e742d4c656e6774683a20300d0a0d0a",
        );

        /// `docker stop web`.
        pub(super) const DK_STOP_PLAIN: &str = concat!(
            "504f5354202f76312e34372f636f6e7461696e6572732f7765622f73746f7020485454502f312e310d0a486f73743a20",
            "6170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d436c69656e742f3238",
            "2e322e3220286c696e7578290d0a436f6e74656e742d4c656e6774683a20300d0a0d0a",
        );

        /// `docker stop -s SIGINT -t 5 web`.
        pub(super) const DK_STOP_SIGNAL: &str = concat!(
            "504f5354202f76312e34372f636f6e7461696e6572732f7765622f73746f703f7369676e616c3d534947494e5426743d",
            "3520485454502f312e310d0a486f73743a206170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e74",
            "3a20446f636b65722d436c69656e742f32382e322e3220286c696e7578290d0a436f6e74656e742d4c656e6774683a20",
            "300d0a0d0a",
        );

        /// `docker kill web`.
        pub(super) const DK_KILL: &str = concat!(
            "504f5354202f76312e34372f636f6e7461696e6572732f7765622f6b696c6c20485454502f312e310d0a486f73743a20",
            "6170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d436c69656e742f3238",
            "2e322e3220286c696e7578290d0a436f6e74656e742d4c656e6774683a20300d0a0d0a",
        );

        /// `docker kill -s KILL web`.
        pub(super) const DK_KILL_S: &str = concat!(
            "504f5354202f76312e34372f636f6e7461696e6572732f7765622f6b696c6c3f7369676e616c3d4b494c4c2048545450",
            "2f312e310d0a486f73743a206170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b",
            "65722d436c69656e742f32382e322e3220286c696e7578290d0a436f6e74656e742d4c656e6774683a20300d0a0d0a",
        );

        /// `docker kill -s 9 web`.
        pub(super) const DK_KILL_NUM: &str = concat!(
            "504f5354202f76312e34372f636f6e7461696e6572732f7765622f6b696c6c3f7369676e616c3d3920485454502f312e",
            "310d0a486f73743a206170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d",
            "436c69656e742f32382e322e3220286c696e7578290d0a436f6e74656e742d4c656e6774683a20300d0a0d0a",
        );

        /// `docker restart -t 3 web`.
        pub(super) const DK_RESTART: &str = concat!(
            "504f5354202f76312e34372f636f6e7461696e6572732f7765622f726573746172743f743d3320485454502f312e310d",
            "0a486f73743a206170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d436c",
            "69656e742f32382e322e3220286c696e7578290d0a436f6e74656e742d4c656e6774683a20300d0a0d0a",
        );

        /// `docker rm web`.
        pub(super) const DK_RM: &str = concat!(
            "44454c455445202f76312e34372f636f6e7461696e6572732f77656220485454502f312e310d0a486f73743a20617069",
            "2e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d436c69656e742f32382e322e",
            "3220286c696e7578290d0a0d0a",
        );

        /// `docker rm -f web`.
        pub(super) const DK_RM_F: &str = concat!(
            "44454c455445202f76312e34372f636f6e7461696e6572732f7765623f666f7263653d3120485454502f312e310d0a48",
            "6f73743a206170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d436c6965",
            "6e742f32382e322e3220286c696e7578290d0a0d0a",
        );

        /// `docker rm -f -v my-app_1`.
        pub(super) const DK_RM_FV: &str = concat!(
            "44454c455445202f76312e34372f636f6e7461696e6572732f6d792d6170705f313f666f7263653d3126763d31204854",
            "54502f312e310d0a486f73743a206170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f",
            "636b65722d436c69656e742f32382e322e3220286c696e7578290d0a0d0a",
        );

        /// `docker ps`.
        pub(super) const DK_PS: &str = concat!(
            "474554202f76312e34372f636f6e7461696e6572732f6a736f6e20485454502f312e310d0a486f73743a206170692e6d",
            "6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d436c69656e742f32382e322e3220",
            "286c696e7578290d0a0d0a",
        );

        /// `docker inspect web`.
        pub(super) const DK_INSPECT: &str = concat!(
            "474554202f76312e34372f636f6e7461696e6572732f7765622f6a736f6e20485454502f312e310d0a486f73743a2061",
            "70692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d436c69656e742f32382e",
            "322e3220286c696e7578290d0a0d0a",
        );

        /// `docker pause web`.
        pub(super) const DK_PAUSE: &str = concat!(
            "504f5354202f76312e34372f636f6e7461696e6572732f7765622f706175736520485454502f312e310d0a486f73743a",
            "206170692e6d6f62792e6c6f63616c686f73740d0a557365722d4167656e743a20446f636b65722d436c69656e742f32",
            "382e322e3220286c696e7578290d0a436f6e74656e742d4c656e6774683a20300d0a0d0a",
        );

        /// grpc-go's (ctr 1.6.20) first writes: the preface, SETTINGS.
        pub(super) const CTR_PREFACE: &str = "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a000000040000000000";

        /// `ctr task kill -s KILL <id>`: its Containers/Get (with a SETTINGS ACK ahead of it).
        pub(super) const CTR_GET: &str = concat!(
            "000000040100000000000069010400000001838645a26087a9233545b245d05b3b988542e43d4919aa2d885fb857bc7a",
            "9233545b10c622a74186a0e41d139d095f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2caecff40027465864d",
            "833505b11f408e21ea48cd516c916a87495158c85f8590b28eda1300004700010000000100000000420a403466316332",
            "643365346631633264336534663163326433653466316332643365346631633264336534663163326433653466316332",
            "6433653466316332643365",
        );

        /// Then Tasks/Get (WINDOW_UPDATE and PING ahead of it).
        pub(super) const CTR_TASK_GET: &str = concat!(
            "0000040800000000000000004900000806000000000002041010090e07070000250104000000038386459c6087a92335",
            "45b245d05b3b988542e91a3aa17ee15f78d1d50c622a7fc3c2c1c0bf00004700010000000300000000420a4034663163",
            "326433653466316332643365346631633264336534663163326433653466316332643365346631633264336534663163",
            "326433653466316332643365",
        );

        /// Then Tasks/Kill, signal 9.
        pub(super) const CTR_KILL: &str = concat!(
            "0000260104000000058386459d6087a9233545b245d05b3b988542e91a3aa17ee15f78d1d50c6635147fc4c3c2c1c000",
            "004900010000000500000000440a40346631633264336534663163326433653466316332643365346631633264336534",
            "663163326433653466316332643365346631633264336534663163326433651809",
        );

        /// `ctr task kill -a -s 15 <id>`: Tasks/Kill with all = true.
        pub(super) const CTR_KILL_ALL: &str = concat!(
            "0000040800000000000000009100000806000000000002041010090e07070000260104000000058386459d6087a92335",
            "45b245d05b3b988542e91a3aa17ee15f78d1d50c6635147fc4c3c2c1c000004b00010000000500000000460a40346631",
            "633264336534663163326433653466316332643365346631633264336534663163326433653466316332643365346631",
            "63326433653466316332643365180f2001",
        );

        /// `ctr task kill <id>` reads the container twice: the second Containers/Get's path is only a dynamic-table index.
        pub(super) const CTR_GET_INDEXED: &str = concat!(
            "0000040800000000000000004900000806000000000002041010090e07070000080104000000038386c3c2c1c0bfbe00",
            "004700010000000300000000420a40346631633264336534663163326433653466316332643365346631633264336534",
            "66316332643365346631633264336534663163326433653466316332643365",
        );

        /// `ctr task kill <id>`: Tasks/Kill, SIGTERM.
        pub(super) const CTR_KILL_TERM: &str = concat!(
            "0000260104000000078386459d6087a9233545b245d05b3b988542e91a3aa17ee15f78d1d50c6635147fc4c3c2c1c000",
            "004900010000000700000000440a40346631633264336534663163326433653466316332643365346631633264336534",
            "66316332643365346631633264336534663163326433653466316332643365180f",
        );

        /// `ctr task rm <id>`: the second Tasks/Get, its path indexed.
        pub(super) const CTR_TASK_GET_INDEXED: &str = concat!(
            "0000080104000000058386bec3c2c1c0bf00004700010000000500000000420a40346631633264336534663163326433",
            "653466316332643365346631633264336534663163326433653466316332643365346631633264336534663163326433",
            "65",
        );

        /// `ctr task rm <id>`: Tasks/Delete.
        pub(super) const CTR_TASK_DELETE: &str = concat!(
            "0000270104000000078386459e6087a9233545b245d05b3b988542e91a3aa17ee15f78d1d50c5f2d05497fc4c3c2c1c0",
            "00004700010000000700000000420a403466316332643365346631633264336534663163326433653466316332643365",
            "3466316332643365346631633264336534663163326433653466316332643365",
        );

        /// `ctr task rm -f <id>`: Tasks/Kill (SIGKILL, all) and Tasks/Wait in one write.
        pub(super) const CTR_KILL_WAIT: &str = concat!(
            "0000040800000000000000009100000806000000000002041010090e07070000260104000000058386459d6087a92335",
            "45b245d05b3b988542e91a3aa17ee15f78d1d50c6635147fc4c3c2c1c000004b00010000000500000000460a40346631",
            "633264336534663163326433653466316332643365346631633264336534663163326433653466316332643365346631",
            "63326433653466316332643365180920010000250104000000078386459c6087a9233545b245d05b3b988542e91a3aa1",
            "7ee15f78d1d50c721993c5c4c3c2c100004700010000000700000000420a403466316332643365346631633264336534",
            "6631633264336534663163326433653466316332643365346631633264336534663163326433653466316332643365",
        );

        /// `ctr container rm <id>`: Containers/Delete.
        pub(super) const CTR_CONTAINER_DELETE: &str = concat!(
            "0000040800000000000000004900000806000000000002041010090e070700002d010400000009838645a46087a92335",
            "45b245d05b3b988542e43d4919aa2d885fb857bc7a9233545b10c5f2d05497c4c3c2c1c0000047000100000009000000",
            "00420a403466316332643365346631633264336534663163326433653466316332643365346631633264336534663163",
            "3264336534663163326433653466316332643365",
        );

        /// `ctr task ls`: Tasks/List (its first writes joined: the preface, SETTINGS, the call).
        pub(super) const CTR_TASK_LIST: &str = concat!(
            "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a000000040000000000000000040100000000000063010400",
            "0000018386459c6087a9233545b245d05b3b988542e91a3aa17ee15f78d1d50c6732134186a0e41d139d095f8b1d75d0",
            "620d263d4c4d65647a8b9acac8b4c7602bb2caecff40027465864d833505b11f408e21ea48cd516c916a87495158c85f",
            "8590b28eda130000050001000000010000000000",
        );

        /// `ctr events`: Events/Subscribe (its first writes joined).
        pub(super) const CTR_EVENTS: &str = concat!(
            "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a000000040000000000000000040100000000000068010400",
            "000001838645a16087a9233545b245d05b3b988542e5ee5a9285fb857c1dcb5250c6eb63412c34654186a0e41d139d09",
            "5f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2caecff40027465864d833505b11f408e21ea48cd516c916a87",
            "495158c85f8590b28eda130000050001000000010000000000",
        );

        /// `ctr container info <id>`: Containers/Get (its first writes joined).
        pub(super) const CTR_CONTAINER_INFO: &str = concat!(
            "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a000000040000000000000000040100000000000069010400",
            "000001838645a26087a9233545b245d05b3b988542e43d4919aa2d885fb857bc7a9233545b10c622a74186a0e41d139d",
            "095f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2caecff40027465864d833505b11f408e21ea48cd516c916a",
            "87495158c85f8590b28eda1300004700010000000100000000420a403466316332643365346631633264336534663163",
            "3264336534663163326433653466316332643365346631633264336534663163326433653466316332643365",
        );
    }

    use captures::*;

    const CID: &str = "4f1c2d3e4f1c2d3e4f1c2d3e4f1c2d3e4f1c2d3e4f1c2d3e4f1c2d3e4f1c2d3e";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn join(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn req(method: &str, object: &str) -> Request {
        request(method, object.to_string())
    }

    fn mode(mut r: Request, m: &str) -> Request {
        r.mode = Some(m.to_string());
        r
    }

    fn signal(mut r: Request, s: i32) -> Request {
        r.signal = Some(s);
        r
    }

    fn timeout(mut r: Request, t: i64) -> Request {
        r.timeout_s = Some(t);
        r
    }

    fn inferred(mut r: Request) -> Request {
        r.inferred = true;
        r
    }

    /// Every prefix of `bytes`: no panic, and whatever a prefix yields is what the whole yields, in
    /// order, with fields either the same or not yet known; a request's object appears only once
    /// its last byte (where the bytes spell it out) is in the prefix.
    fn check_prefixes(socket: Socket, bytes: &[u8]) {
        let whole = parse(socket, bytes);
        let mut seen = 0;
        for n in 0..=bytes.len() {
            let got = parse(socket, &bytes[..n]);
            assert!(got.len() >= seen, "{socket:?}: a longer prefix ({n}) lost a request");
            seen = got.len();
            for (g, w) in got.iter().zip(&whole) {
                assert_eq!((&g.method, &g.object, g.inferred), (&w.method, &w.object, w.inferred), "prefix {n}");
                assert!(g.mode.is_none() || g.mode == w.mode, "prefix {n}: {g:?} vs {w:?}");
                assert!(g.signal.is_none() || g.signal == w.signal, "prefix {n}: {g:?} vs {w:?}");
                assert!(g.timeout_s.is_none() || g.timeout_s == w.timeout_s, "prefix {n}: {g:?} vs {w:?}");
                if let Some(at) = find(bytes, g.object.as_bytes()) {
                    assert!(n >= at + g.object.len(), "prefix {n} named {:?} before it was whole", g.object);
                }
            }
            assert!(got.len() <= whole.len(), "prefix {n} yields more than the whole: {got:?}");
        }
        assert_eq!(seen, whole.len());
    }

    // ---- D-Bus -------------------------------------------------------------------------------

    /// A D-Bus method call built by the specification's rules, in either byte order; checked below
    /// to rebuild real captures byte for byte, then used for what no client here sends (big-endian
    /// messages, odd headers).
    struct Call<'a> {
        big: bool,
        /// libdbus writes INTERFACE before MEMBER, sd-bus after.
        libdbus: bool,
        flags: u8,
        serial: u32,
        path: &'a str,
        interface: Option<&'a str>,
        member: &'a str,
        destination: Option<&'a str>,
        args: &'a [Arg<'a>],
    }

    enum Arg<'a> {
        S(&'a str),
        I(i32),
    }

    struct Writer {
        buf: Vec<u8>,
        big: bool,
    }

    impl Writer {
        fn pad(&mut self, n: usize) {
            while !self.buf.len().is_multiple_of(n) {
                self.buf.push(0);
            }
        }

        fn u32(&mut self, v: u32) {
            self.pad(4);
            self.buf.extend(if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
        }

        fn string(&mut self, s: &str) {
            self.u32(s.len() as u32);
            self.buf.extend(s.as_bytes());
            self.buf.push(0);
        }

        fn signature(&mut self, s: &str) {
            self.buf.push(s.len() as u8);
            self.buf.extend(s.as_bytes());
            self.buf.push(0);
        }
    }

    impl Call<'_> {
        fn manager(member: &'static str, args: &'static [Arg<'static>]) -> Call<'static> {
            Call {
                big: false,
                libdbus: false,
                flags: 4,
                serial: 2,
                path: "/org/freedesktop/systemd1",
                interface: Some("org.freedesktop.systemd1.Manager"),
                member,
                destination: Some("org.freedesktop.systemd1"),
                args,
            }
        }

        fn unit(path: &'static str, member: &'static str, args: &'static [Arg<'static>]) -> Call<'static> {
            Call { path, interface: Some("org.freedesktop.systemd1.Unit"), ..Call::manager(member, args) }
        }

        fn encode(&self) -> Vec<u8> {
            let mut body = Writer { buf: Vec::new(), big: self.big };
            let mut sig = String::new();
            for a in self.args {
                match a {
                    Arg::S(s) => {
                        sig.push('s');
                        body.string(s);
                    }
                    Arg::I(i) => {
                        sig.push('i');
                        body.u32(*i as u32);
                    }
                }
            }
            let mut h = Writer { buf: vec![if self.big { b'B' } else { b'l' }, 1, self.flags, 1], big: self.big };
            h.u32(body.buf.len() as u32);
            h.u32(self.serial);
            h.u32(0);
            let start = h.buf.len();
            let field = |h: &mut Writer, code: u8, ty: &str, value: &str| {
                h.pad(8);
                h.buf.push(code);
                h.signature(ty);
                if ty == "g" { h.signature(value) } else { h.string(value) }
            };
            field(&mut h, 1, "o", self.path);
            if !self.libdbus {
                field(&mut h, 3, "s", self.member);
            }
            if let Some(i) = self.interface {
                field(&mut h, 2, "s", i);
            }
            if self.libdbus {
                field(&mut h, 3, "s", self.member);
            }
            if let Some(d) = self.destination {
                field(&mut h, 6, "s", d);
            }
            if !sig.is_empty() {
                field(&mut h, 8, "g", &sig);
            }
            let len = (h.buf.len() - start) as u32;
            h.buf[12..16].copy_from_slice(&if self.big { len.to_be_bytes() } else { len.to_le_bytes() });
            h.pad(8);
            h.buf.extend(body.buf);
            h.buf
        }

        fn be(self) -> Self {
            Call { big: true, ..self }
        }
    }

    /// (capture, what it asks for) for the calls systemctl and busctl make.
    fn dbus_stops() -> Vec<(&'static str, Request)> {
        vec![
            (SC_STOP, mode(req("StopUnit", "nginx.service"), "replace")),
            (SC_RESTART, mode(req("RestartUnit", "nginx.service"), "replace")),
            (SC_TRY_RESTART, mode(req("TryRestartUnit", "nginx.service"), "replace")),
            (SC_RELOAD_OR_RESTART, mode(req("ReloadOrRestartUnit", "nginx.service"), "replace")),
            (SC_KILL, signal(mode(req("KillUnit", "nginx.service"), "all"), 9)),
            (SC_KILL_MAIN, signal(mode(req("KillUnit", "web-app.service"), "main"), 1)),
            (SC_STOP_SCOPE, mode(req("StopUnit", "session-4.scope"), "replace")),
            (SCU_STOP, mode(req("StopUnit", "nginx.service"), "replace")),
            (SCU_KILL, signal(mode(req("KillUnit", "nginx.service"), "all"), 15)),
            (BC_KILL_UNIT, signal(mode(req("KillUnit", "nginx.service"), "all"), 9)),
            (BC_QUEUE_SIGNAL_UNIT, signal(mode(req("QueueSignalUnit", "nginx.service"), "main"), 35)),
            (BC_ENQUEUE_RESTART, mode(req("EnqueueUnitJob", "nginx.service"), "replace")),
            (BC_RELOAD_OR_TRY_RESTART, mode(req("ReloadOrTryRestartUnit", "nginx.service"), "fail")),
            (BC_KILL_SUBGROUP, signal(mode(req("KillUnitSubgroup", "nginx.service"), "cgroup"), 15)),
            (BC_UNIT_STOP, mode(req("Stop", "nginx.service"), "replace")),
            (BC_UNIT_KILL, signal(mode(req("Kill", "getty@tty1.service"), "all"), 15)),
            (BC_UNIT_RESTART, mode(req("Restart", "my-app.service"), "replace")),
            (BC_UNIT_ENQUEUE_STOP, mode(req("EnqueueJob", "nginx.service"), "fail")),
            (BC_UNIT_QUEUE_SIGNAL, signal(mode(req("QueueSignal", "nginx.service"), "main"), 34)),
            (DS_STOP, mode(req("StopUnit", "nginx.service"), "replace")),
            (DS_SYSTEM_RESTART, mode(req("RestartUnit", "nginx.service"), "replace")),
        ]
    }

    /// Status queries, starts, property reads and the bus daemon's own calls.
    const DBUS_OTHERS: &[&str] = &[
        SD_SASL,
        SC_START,
        SC_STATUS,
        SC_LIST,
        SC_IS_ACTIVE,
        SC_SHOW,
        BUS_HELLO,
        SCU_ADD_MATCH,
        BC_ENQUEUE_START,
        BC_GET_UNIT,
        BC_LIST_UNITS,
        BC_GET_PROPERTY,
        DS_SYSTEM_HELLO,
    ];

    #[test]
    fn dbus_every_stop_systemctl_busctl_and_dbus_send_make_is_read_on_either_socket() {
        for (capture, want) in dbus_stops() {
            let bytes = hex(capture);
            for socket in [Socket::SystemdPrivate, Socket::SystemBus] {
                assert_eq!(parse(socket, &bytes), vec![want.clone()], "{socket:?} {want:?}");
            }
        }
    }

    #[test]
    fn dbus_with_the_sasl_exchange_ahead_in_the_same_write() {
        let libdbus_sasl = b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n";
        for (capture, want) in dbus_stops() {
            let sd = join(&[&hex(SD_SASL), &hex(capture)]);
            assert_eq!(parse(Socket::SystemdPrivate, &sd), vec![want.clone()]);
            let lib = join(&[libdbus_sasl, &hex(capture)]);
            assert_eq!(parse(Socket::SystemBus, &lib), vec![want.clone()]);
        }
        // libdbus sends its SASL lines one write each: none is a request.
        for line in [&b"\0"[..], b"AUTH EXTERNAL 30\r\n", b"NEGOTIATE_UNIX_FD\r\n", b"BEGIN\r\n", b"DATA\r\n"] {
            assert_eq!(parse(Socket::SystemdPrivate, line), vec![]);
        }
        // SASL that never reaches BEGIN carries no message.
        let unfinished = join(&[b"\0AUTH EXTERNAL 30\r\n", &hex(SC_STOP)]);
        assert_eq!(parse(Socket::SystemdPrivate, &unfinished), vec![]);
    }

    #[test]
    fn dbus_several_messages_in_one_write_each_count() {
        let bytes = join(&[&hex(SD_SASL), &hex(BUS_HELLO), &hex(SCU_ADD_MATCH), &hex(SCU_STOP), &hex(BC_UNIT_KILL)]);
        assert_eq!(
            parse(Socket::SystemBus, &bytes),
            vec![
                mode(req("StopUnit", "nginx.service"), "replace"),
                signal(mode(req("Kill", "getty@tty1.service"), "all"), 15)
            ]
        );
        let busy = join(&[&hex(BC_GET_UNIT), &hex(SC_STATUS), &hex(BC_KILL_UNIT), &hex(BC_LIST_UNITS)]);
        assert_eq!(parse(Socket::SystemBus, &busy), vec![signal(mode(req("KillUnit", "nginx.service"), "all"), 9)]);
    }

    #[test]
    fn dbus_queries_starts_and_the_bus_daemon_s_own_calls_are_not_stops() {
        for capture in DBUS_OTHERS {
            for socket in [Socket::SystemdPrivate, Socket::SystemBus] {
                assert_eq!(parse(socket, &hex(capture)), vec![], "{socket:?} {capture}");
            }
        }
        let all: Vec<u8> = DBUS_OTHERS[1..].iter().flat_map(|c| hex(c)).collect();
        assert_eq!(parse(Socket::SystemBus, &join(&[&hex(SD_SASL), &all])), vec![]);
    }

    #[test]
    fn dbus_the_test_encoder_rebuilds_real_captures_byte_for_byte() {
        let stop = Call::manager("StopUnit", &[Arg::S("nginx.service"), Arg::S("replace")]);
        assert_eq!(Call { serial: 1, ..stop }.encode(), hex(SC_STOP));
        let libdbus = Call::manager("StopUnit", &[Arg::S("nginx.service"), Arg::S("replace")]);
        assert_eq!(Call { serial: 1, flags: 0, libdbus: true, ..libdbus }.encode(), hex(DS_STOP));
        let kill = Call::manager("KillUnit", &[Arg::S("nginx.service"), Arg::S("all"), Arg::I(9)]);
        assert_eq!(kill.encode(), hex(BC_KILL_UNIT));
        let unit =
            Call::unit("/org/freedesktop/systemd1/unit/getty_40tty1_2eservice", "Kill", &[Arg::S("all"), Arg::I(15)]);
        assert_eq!(unit.encode(), hex(BC_UNIT_KILL));
    }

    #[test]
    fn dbus_big_endian_messages_read_as_little_endian_ones() {
        const NGINX: &str = "/org/freedesktop/systemd1/unit/nginx_2eservice";
        let calls = [
            (Call::manager("StopUnit", &[Arg::S("nginx.service"), Arg::S("replace")]), "replace", None),
            (Call::manager("RestartUnit", &[Arg::S("nginx.service"), Arg::S("fail")]), "fail", None),
            (Call::manager("TryRestartUnit", &[Arg::S("nginx.service"), Arg::S("replace")]), "replace", None),
            (Call::manager("ReloadOrRestartUnit", &[Arg::S("nginx.service"), Arg::S("replace")]), "replace", None),
            (Call::manager("ReloadOrTryRestartUnit", &[Arg::S("nginx.service"), Arg::S("replace")]), "replace", None),
            (Call::manager("KillUnit", &[Arg::S("nginx.service"), Arg::S("main"), Arg::I(15)]), "main", Some(15)),
            (
                Call::manager("QueueSignalUnit", &[Arg::S("nginx.service"), Arg::S("all"), Arg::I(40), Arg::I(-3)]),
                "all",
                Some(40),
            ),
            (
                Call::manager("EnqueueUnitJob", &[Arg::S("nginx.service"), Arg::S("try-restart"), Arg::S("replace")]),
                "replace",
                None,
            ),
            (Call::unit(NGINX, "Stop", &[Arg::S("replace")]), "replace", None),
            (Call::unit(NGINX, "TryRestart", &[Arg::S("replace")]), "replace", None),
            (Call::unit(NGINX, "ReloadOrRestart", &[Arg::S("replace")]), "replace", None),
            (Call::unit(NGINX, "ReloadOrTryRestart", &[Arg::S("replace")]), "replace", None),
            (Call::unit(NGINX, "Kill", &[Arg::S("control"), Arg::I(2)]), "control", Some(2)),
            (Call::unit(NGINX, "QueueSignal", &[Arg::S("main"), Arg::I(34), Arg::I(9)]), "main", Some(34)),
            (Call::unit(NGINX, "EnqueueJob", &[Arg::S("restart"), Arg::S("fail")]), "fail", None),
        ];
        for (call, m, sig) in calls {
            let member = call.member;
            let little = parse(Socket::SystemBus, &call.encode());
            let big = parse(Socket::SystemBus, &call.be().encode());
            let mut want = mode(req(member, "nginx.service"), m);
            want.signal = sig;
            assert_eq!(little, vec![want.clone()], "{member}");
            assert_eq!(big, vec![want], "{member}");
        }
    }

    #[test]
    fn dbus_only_systemd_s_own_interfaces_paths_signatures_and_recipient() {
        let stop = || Call::manager("StopUnit", &[Arg::S("nginx.service"), Arg::S("replace")]);
        let want = vec![mode(req("StopUnit", "nginx.service"), "replace")];
        // No destination: on the bus it goes to the bus daemon; on systemd's socket, to systemd.
        let direct = Call { destination: None, ..stop() }.encode();
        assert_eq!(parse(Socket::SystemdPrivate, &direct), want);
        assert_eq!(parse(Socket::SystemBus, &direct), vec![]);
        // No interface: systemd finds the member on the object's own interfaces.
        assert_eq!(parse(Socket::SystemBus, &Call { interface: None, ..stop() }.encode()), want);
        let others = [
            Call { destination: Some("org.example.Other"), ..stop() },
            Call { interface: Some("org.example.Manager"), ..stop() },
            Call { interface: Some("org.freedesktop.systemd1.Unit"), ..stop() },
            Call { path: "/org/freedesktop/systemd1/job/42", ..stop() },
            Call {
                path: "/org/freedesktop/systemd1/unit/self",
                interface: Some("org.freedesktop.systemd1.Unit"),
                member: "Stop",
                args: &[Arg::S("replace")],
                ..stop()
            },
            Call { args: &[Arg::S("nginx.service")], ..stop() },
            Call { args: &[Arg::S(""), Arg::S("replace")], ..stop() },
            Call { member: "StartUnit", ..stop() },
            Call { member: "ReloadUnit", ..stop() },
            Call::manager("KillUnit", &[Arg::S("nginx.service"), Arg::S("all"), Arg::I(0)]),
            Call::manager("KillUnit", &[Arg::S("nginx.service"), Arg::S("all"), Arg::I(65)]),
            Call::manager("EnqueueUnitJob", &[Arg::S("nginx.service"), Arg::S("reload-or-start"), Arg::S("replace")]),
            Call::manager("EnqueueUnitJob", &[Arg::S("nginx.service"), Arg::S("start"), Arg::S("replace")]),
            Call::manager("GetUnitProcesses", &[Arg::S("nginx.service")]),
        ];
        for call in others {
            assert_eq!(parse(Socket::SystemdPrivate, &call.encode()), vec![], "{} {}", call.path, call.member);
        }
        // A signal or a reply that happens to carry the member's name is not a call.
        for kind in [2, 3, 4] {
            let mut m = stop().encode();
            m[1] = kind;
            assert_eq!(parse(Socket::SystemdPrivate, &m), vec![], "message type {kind}");
        }
    }

    #[test]
    fn dbus_unit_paths_are_unescaped_as_systemd_escapes_them() {
        for (label, name) in [
            ("nginx_2eservice", Some("nginx.service")),
            ("getty_40tty1_2eservice", Some("getty@tty1.service")),
            ("my_2dapp_2eservice", Some("my-app.service")),
            ("session_2d4_2escope", Some("session-4.scope")),
            ("dev_2dsda1_2edevice", Some("dev-sda1.device")),
            ("foo_5fbar_2eservice", Some("foo_bar.service")),
            ("a_zz_2eservice", Some("a_zz.service")),
            ("foo_bar_2eservice", None),
            ("self", None),
            ("nginx", None),
            ("nginx_2eservice/x", None),
            ("_ff_2eservice", None),
        ] {
            assert_eq!(dbus::unit_name(label).as_deref(), name, "{label}");
        }
    }

    #[test]
    fn dbus_every_prefix_of_a_capture() {
        for (capture, _) in dbus_stops() {
            check_prefixes(Socket::SystemdPrivate, &join(&[&hex(SD_SASL), &hex(capture)]));
        }
        check_prefixes(Socket::SystemBus, &join(&[&hex(BUS_HELLO), &hex(SCU_STOP), &hex(BC_UNIT_STOP)]));
        // The unit is whole with its last byte, the mode with its own.
        let stop = hex(SC_STOP);
        let at = find(&stop, b"nginx.service").expect("in the body") + b"nginx.service".len();
        assert_eq!(parse(Socket::SystemdPrivate, &stop[..at]), vec![]);
        assert_eq!(parse(Socket::SystemdPrivate, &stop[..at + 1]), vec![req("StopUnit", "nginx.service")]);
    }

    // ---- Docker ------------------------------------------------------------------------------

    #[test]
    fn docker_every_stop_the_cli_sends_is_read() {
        for (capture, want) in [
            (DK_STOP, timeout(req("stop", "web"), 2)),
            (DK_STOP_PLAIN, req("stop", "web")),
            (DK_STOP_SIGNAL, timeout(signal(req("stop", "web"), 2), 5)),
            (DK_KILL, req("kill", "web")),
            (DK_KILL_S, signal(req("kill", "web"), 9)),
            (DK_KILL_NUM, signal(req("kill", "web"), 9)),
            (DK_RESTART, timeout(req("restart", "web"), 3)),
            (DK_RM_F, req("remove", "web")),
            (DK_RM_FV, req("remove", "my-app_1")),
        ] {
            assert_eq!(parse(Socket::Docker, &hex(capture)), vec![want.clone()], "{want:?}");
            let after_ping = join(&[&hex(DK_PING), &hex(capture)]);
            assert_eq!(parse(Socket::Docker, &after_ping), vec![want.clone()], "{want:?}");
            check_prefixes(Socket::Docker, &after_ping);
        }
    }

    #[test]
    fn docker_other_requests_and_an_unforced_remove_are_not_stops() {
        for capture in [DK_PING, DK_PS, DK_INSPECT, DK_PAUSE, DK_RM] {
            assert_eq!(parse(Socket::Docker, &hex(capture)), vec![], "{capture}");
        }
        for line in [
            "GET /v1.47/containers/json?all=1 HTTP/1.1",
            "GET /v1.47/containers/web/stop HTTP/1.1",
            "GET /events?filters=%7B%7D HTTP/1.1",
            "POST /v1.47/containers/create?name=stop HTTP/1.1",
            "POST /v1.47/containers/web/start HTTP/1.1",
            "POST /v1.47/containers/web/wait?condition=not-running HTTP/1.1",
            "POST /v1.47/containers/prune HTTP/1.1",
            "POST /v1.47/images/web/stop HTTP/1.1",
            "POST /v1.47/containers/web/stop/extra HTTP/1.1",
            "DELETE /v1.47/containers/web?force=0 HTTP/1.1",
            "DELETE /v1.47/containers/web?force=false&v=1 HTTP/1.1",
            "DELETE /v1.47/containers/web?v=1 HTTP/1.1",
            "DELETE /v1.47/images/web?force=1 HTTP/1.1",
            "POST /v1.47/containers//stop HTTP/1.1",
            "POST /v1.47/containers/a%2Fb/stop HTTP/1.1",
            "POST /v1.47/containers/web/kill?signal=NOPE HTTP/1.1",
            "POST /v1.47/containers/web/kill?signal=0 HTTP/1.1",
            "POST /v1.47/containers/web/stop?t=soon HTTP/1.1",
            "POST /v1.47/containers/web%zz/stop HTTP/1.1",
            "POST /x/containers/web/stop HTTP/1.1",
            "POST /v1.47/containers/web/stop HTTP/2.0",
            "post /v1.47/containers/web/stop HTTP/1.1",
        ] {
            let bytes = format!("{line}\r\nHost: api.moby.localhost\r\n\r\n");
            assert_eq!(parse(Socket::Docker, bytes.as_bytes()), vec![], "{line}");
        }
    }

    #[test]
    fn docker_url_forms() {
        for (line, want) in [
            ("POST /containers/web/stop?t=10 HTTP/1.1", timeout(req("stop", "web"), 10)),
            ("POST /v1.51/containers/web/stop?timeout=7 HTTP/1.1", timeout(req("stop", "web"), 7)),
            ("POST /v1.47/containers/web/stop?t=-1 HTTP/1.1", timeout(req("stop", "web"), -1)),
            ("POST /v1.47/containers/web/stop?t=4&t=9 HTTP/1.1", timeout(req("stop", "web"), 4)),
            ("POST /v1.24/containers/4f1c2d3e/kill?signal=SIGKILL HTTP/1.1", signal(req("kill", "4f1c2d3e"), 9)),
            ("POST /v1.47/containers/web/kill?signal=hup HTTP/1.1", signal(req("kill", "web"), 1)),
            ("POST /v1.47/containers/web/kill?signal=RTMIN%2B3 HTTP/1.1", signal(req("kill", "web"), 37)),
            (
                "POST /v1.47/containers/web/restart?signal=SIGUSR1&t=1 HTTP/1.1",
                timeout(signal(req("restart", "web"), 10), 1),
            ),
            ("POST /v1.47/containers/my%2Dapp%20x/stop HTTP/1.1", req("stop", "my-app x")),
            ("POST /v1.47/containers/%E2%9C%93/stop HTTP/1.1", req("stop", "✓")),
            ("DELETE /containers/web?force=true HTTP/1.1", req("remove", "web")),
            ("DELETE /v1.47/containers/web?v=1&force=True HTTP/1.0", req("remove", "web")),
            ("DELETE /v1.47/containers/web?force=yes&link=0 HTTP/1.1", req("remove", "web")),
        ] {
            let bytes = format!("{line}\r\nHost: docker\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(parse(Socket::Docker, bytes.as_bytes()), vec![want.clone()], "{line}");
        }
    }

    #[test]
    fn docker_pipelined_requests_are_each_read_and_bodies_skipped() {
        let body = "{\"x\":\"POST /v1.47/containers/evil/stop HTTP/1.1\\r\\n\"}";
        let bytes = format!(
            "POST /v1.47/containers/create HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
             POST /v1.47/containers/web/kill?signal=TERM HTTP/1.1\r\ncontent-length: 0\r\n\r\n\
             DELETE /v1.47/containers/db?force=1 HTTP/1.1\r\n\r\n",
            body.len()
        );
        assert_eq!(parse(Socket::Docker, bytes.as_bytes()), vec![signal(req("kill", "web"), 15), req("remove", "db")]);
        check_prefixes(Socket::Docker, bytes.as_bytes());
        // A body that cannot be skipped ends the reading: what follows it is not known to be a request.
        let chunked = "POST /v1.47/containers/web/stop HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                       POST /v1.47/containers/db/stop HTTP/1.1\r\n\r\n";
        assert_eq!(parse(Socket::Docker, chunked.as_bytes()), vec![req("stop", "web")]);
        // A body's text alone is not a request line.
        assert_eq!(parse(Socket::Docker, body.as_bytes()), vec![]);
    }

    // ---- containerd and the CRI --------------------------------------------------------------

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    fn grpc_message(body: &[u8]) -> Vec<u8> {
        let mut m = vec![0];
        m.extend((body.len() as u32).to_be_bytes());
        m.extend(body);
        m
    }

    fn encode(m: &impl prost::Message) -> Vec<u8> {
        m.encode_to_vec()
    }

    /// A header block as grpc-go writes one, with `:path` as given: `huffman` or raw, its name
    /// indexed (5 = `:path /index.html`, as grpc-go picks it) or literal.
    fn headers(path: &str, huffman: bool, literal_name: bool) -> Vec<u8> {
        let mut b = vec![0x83, 0x86]; // :method POST, :scheme http
        let string = |b: &mut Vec<u8>, s: &[u8]| {
            let s = if huffman { super::huffman::encode(s) } else { s.to_vec() };
            let flag = if huffman { 0x80 } else { 0 };
            if s.len() < 127 {
                b.push(flag | s.len() as u8);
            } else {
                b.push(flag | 127);
                b.push((s.len() - 127) as u8);
            }
            b.extend(s);
        };
        if literal_name {
            b.push(0x10); // never indexed, literal name
            string(&mut b, b":path");
        } else {
            b.push(0x45); // incremental indexing, name 5
        }
        string(&mut b, path.as_bytes());
        b.push(0x41); // :authority, incremental indexing
        string(&mut b, b"localhost");
        b.push(0x5f); // content-type (31)
        b.push(0x10);
        string(&mut b, b"application/grpc");
        b
    }

    fn call(path: &str, body: &[u8]) -> Vec<u8> {
        join(&[&frame(1, 4, 1, &headers(path, true, false)), &frame(0, 1, 1, &grpc_message(body))])
    }

    fn kill_request(id: &str, signal: u32) -> Vec<u8> {
        encode(&containerd_client::services::v1::KillRequest { container_id: id.into(), signal, ..Default::default() })
    }

    fn stop_container(id: &str, timeout: i64) -> Vec<u8> {
        encode(&k8s_cri::v1::StopContainerRequest { container_id: id.into(), timeout })
    }

    #[test]
    fn grpc_every_stop_ctr_sends_is_read() {
        let kill_all = signal(req("Kill", CID), 15);
        for (bytes, want) in [
            (vec![CTR_KILL], vec![signal(req("Kill", CID), 9)]),
            (vec![CTR_KILL_TERM], vec![signal(req("Kill", CID), 15)]),
            (vec![CTR_KILL_ALL], vec![kill_all]),
            (vec![CTR_KILL_WAIT], vec![signal(req("Kill", CID), 9)]),
            (vec![CTR_TASK_DELETE], vec![req("DeleteTask", CID)]),
            (vec![CTR_CONTAINER_DELETE], vec![req("DeleteContainer", CID)]),
            (vec![CTR_PREFACE, CTR_GET, CTR_TASK_GET, CTR_KILL], vec![signal(req("Kill", CID), 9)]),
        ] {
            let bytes: Vec<u8> = bytes.iter().flat_map(|c| hex(c)).collect();
            assert_eq!(parse(Socket::Containerd, &bytes), want);
            check_prefixes(Socket::Containerd, &bytes);
        }
    }

    #[test]
    fn grpc_queries_listings_and_subscriptions_are_not_stops() {
        for capture in [
            CTR_PREFACE,
            CTR_GET,
            CTR_TASK_GET,
            CTR_GET_INDEXED,
            CTR_TASK_GET_INDEXED,
            CTR_TASK_LIST,
            CTR_EVENTS,
            CTR_CONTAINER_INFO,
        ] {
            assert_eq!(parse(Socket::Containerd, &hex(capture)), vec![], "{capture}");
        }
    }

    #[test]
    fn grpc_paths_raw_or_huffman_with_the_name_indexed_or_literal() {
        let body = kill_request(CID, 9);
        for huffman in [false, true] {
            for literal_name in [false, true] {
                let block = headers("/containerd.services.tasks.v1.Tasks/Kill", huffman, literal_name);
                let bytes = join(&[&frame(1, 4, 3, &block), &frame(0, 1, 3, &grpc_message(&body))]);
                assert_eq!(parse(Socket::Containerd, &bytes), vec![signal(req("Kill", CID), 9)]);
                check_prefixes(Socket::Containerd, &bytes);
            }
        }
    }

    #[test]
    fn grpc_cri_and_containerd_methods() {
        let pod = "9a8b7c6d".repeat(8);
        for (path, body, want) in [
            (
                "/runtime.v1.RuntimeService/StopContainer",
                stop_container(CID, 30),
                timeout(req("StopContainer", CID), 30),
            ),
            ("/runtime.v1.RuntimeService/StopContainer", stop_container(CID, 0), timeout(req("StopContainer", CID), 0)),
            (
                "/runtime.v1alpha2.RuntimeService/StopContainer",
                encode(&k8s_cri::v1alpha2::StopContainerRequest { container_id: CID.into(), timeout: 2 }),
                timeout(req("StopContainer", CID), 2),
            ),
            (
                "/runtime.v1.RuntimeService/RemoveContainer",
                encode(&k8s_cri::v1::RemoveContainerRequest { container_id: CID.into() }),
                req("RemoveContainer", CID),
            ),
            (
                "/runtime.v1.RuntimeService/StopPodSandbox",
                encode(&k8s_cri::v1::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }),
                req("StopPodSandbox", &pod),
            ),
            (
                "/runtime.v1.RuntimeService/RemovePodSandbox",
                encode(&k8s_cri::v1::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }),
                req("RemovePodSandbox", &pod),
            ),
            (
                "/containerd.services.tasks.v1.Tasks/Delete",
                encode(&containerd_client::services::v1::DeleteTaskRequest { container_id: "web".into() }),
                req("DeleteTask", "web"),
            ),
            (
                "/containerd.services.tasks.v1.Tasks/Kill",
                encode(&containerd_client::services::v1::KillRequest {
                    container_id: "web".into(),
                    exec_id: "exec-1".into(),
                    signal: 2,
                    all: false,
                }),
                signal(req("Kill", "web"), 2),
            ),
        ] {
            assert_eq!(parse(Socket::Containerd, &call(path, &body)), vec![want.clone()], "{path}");
        }
        for (path, body) in [
            ("/containerd.services.tasks.v1.Tasks/Kill", kill_request(CID, 0)),
            ("/containerd.services.tasks.v1.Tasks/Kill", kill_request(CID, 65)),
            ("/containerd.services.tasks.v1.Tasks/Kill", kill_request("", 9)),
            ("/containerd.services.tasks.v1.Tasks/Start", kill_request(CID, 9)),
            ("/containerd.services.tasks.v1.Tasks/Pause", kill_request(CID, 9)),
            ("/containerd.services.containers.v1.Containers/Get", kill_request(CID, 9)),
            ("/runtime.v1.RuntimeService/ContainerStatus", stop_container(CID, 30)),
            ("/runtime.v1.RuntimeService/StartContainer", stop_container(CID, 30)),
            ("/runtime.v1.ImageService/RemoveImage", stop_container(CID, 30)),
        ] {
            assert_eq!(parse(Socket::Containerd, &call(path, &body)), vec![], "{path}");
        }
        // A compressed message cannot be read.
        let mut compressed = call("/containerd.services.tasks.v1.Tasks/Kill", &kill_request(CID, 9));
        let at = compressed.len() - kill_request(CID, 9).len() - 5;
        compressed[at] = 1;
        assert_eq!(parse(Socket::Containerd, &compressed), vec![]);
    }

    /// The header block grpc-go sends for a call it has made before on the connection: every
    /// field, the path too, an index into the dynamic table (from `CTR_GET_INDEXED`).
    const INDEXED_BLOCK: &[u8] = &[0x83, 0x86, 0xc3, 0xc2, 0xc1, 0xc0, 0xbf, 0xbe];

    #[test]
    fn grpc_a_path_from_the_dynamic_table_is_inferred_only_from_an_unmistakable_body() {
        let indexed = |body: &[u8]| join(&[&frame(1, 4, 5, INDEXED_BLOCK), &frame(0, 1, 5, &grpc_message(body))]);
        let data_only = |body: &[u8]| frame(0, 1, 7, &grpc_message(body));
        assert!(hex(CTR_GET_INDEXED).windows(INDEXED_BLOCK.len()).any(|w| w == INDEXED_BLOCK));
        for (body, want) in [
            (kill_request(CID, 9), inferred(signal(req("Kill", CID), 9))),
            (
                encode(&containerd_client::services::v1::KillRequest {
                    container_id: CID.into(),
                    signal: 15,
                    all: true,
                    ..Default::default()
                }),
                inferred(signal(req("Kill", CID), 15)),
            ),
            (stop_container(CID, 10), inferred(timeout(req("StopContainer", CID), 10))),
        ] {
            assert_eq!(parse(Socket::Containerd, &indexed(&body)), vec![want.clone()]);
            assert_eq!(parse(Socket::Containerd, &data_only(&body)), vec![want.clone()]);
            check_prefixes(Socket::Containerd, &indexed(&body));
        }
        use containerd_client::services::v1 as ctd;
        let others = [
            // Status calls and other bodies that share a shape with a stop.
            encode(&k8s_cri::v1::ContainerStatusRequest { container_id: CID.into(), verbose: true }),
            encode(&k8s_cri::v1::PodSandboxStatusRequest { pod_sandbox_id: CID.into(), verbose: true }),
            encode(&k8s_cri::v1::ExecSyncRequest { container_id: CID.into(), cmd: vec!["true".into()], timeout: 9 }),
            encode(&ctd::CloseIoRequest { container_id: CID.into(), stdin: true, ..Default::default() }),
            encode(&ctd::ResizePtyRequest { container_id: CID.into(), width: 80, height: 24, ..Default::default() }),
            encode(&ctd::GetRequest { container_id: CID.into(), ..Default::default() }),
            encode(&ctd::WaitRequest { container_id: CID.into(), exec_id: "x".into() }),
            // A stop too faint to tell: a short timeout, signal 1, an exec, a name that is not an ID.
            stop_container(CID, 1),
            kill_request(CID, 1),
            encode(&ctd::KillRequest { container_id: CID.into(), exec_id: "e".into(), signal: 9, all: false }),
            kill_request("web", 9),
            kill_request(&CID.to_uppercase(), 9),
            stop_container(&CID[1..], 10),
        ];
        for body in others {
            assert_eq!(parse(Socket::Containerd, &indexed(&body)), vec![], "{body:02x?}");
            assert_eq!(parse(Socket::Containerd, &data_only(&body)), vec![], "{body:02x?}");
        }
        // A body cut short may have hidden a field that changes its reading.
        let cut = indexed(&kill_request(CID, 9));
        assert_eq!(parse(Socket::Containerd, &cut[..cut.len() - 1]), vec![]);
        // What was not read still says which container it named: StopPodSandbox among them.
        let sandbox = encode(&k8s_cri::v1::StopPodSandboxRequest { pod_sandbox_id: CID.into() });
        assert_eq!(unread_ids(Socket::Containerd, &indexed(&sandbox)), vec![CID.to_string()]);
        assert_eq!(unread_ids(Socket::Containerd, &indexed(&kill_request(CID, 9))), Vec::<String>::new());
        let known = join(&[
            &frame(1, 4, 5, &headers("/runtime.v1.RuntimeService/ContainerStatus", true, false)),
            &frame(
                0,
                1,
                5,
                &grpc_message(&encode(&k8s_cri::v1::ContainerStatusRequest {
                    container_id: CID.into(),
                    verbose: false,
                })),
            ),
        ]);
        assert_eq!(unread_ids(Socket::Containerd, &known), Vec::<String>::new(), "a method read is no stop");
    }

    #[test]
    fn grpc_frames_padding_priority_continuation_and_split_data() {
        let block = headers("/runtime.v1.RuntimeService/StopContainer", true, false);
        let message = grpc_message(&stop_container(CID, 12));
        let want = vec![timeout(req("StopContainer", CID), 12)];
        // HEADERS with PADDED and PRIORITY, DATA padded.
        let mut padded_headers = vec![3];
        padded_headers.extend([0, 0, 0, 0, 15]);
        padded_headers.extend(&block);
        padded_headers.extend([0, 0, 0]);
        let mut padded_data = vec![2];
        padded_data.extend(&message);
        padded_data.extend([0, 0]);
        let bytes = join(&[&frame(1, 0x4 | 0x8 | 0x20, 9, &padded_headers), &frame(0, 0x1 | 0x8, 9, &padded_data)]);
        assert_eq!(parse(Socket::Containerd, &bytes), want);
        check_prefixes(Socket::Containerd, &bytes);
        // The block in two frames, the message in two DATA frames, a WINDOW_UPDATE and PING before.
        let (a, b) = block.split_at(10);
        let (m1, m2) = message.split_at(20);
        let bytes = join(&[
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            &frame(4, 0, 0, &[0, 4, 0, 0, 0, 0]),
            &frame(8, 0, 0, &[0, 0, 0, 12]),
            &frame(6, 0, 0, &[1; 8]),
            &frame(1, 0, 11, a),
            &frame(9, 4, 11, b),
            &frame(0, 0, 11, m1),
            &frame(8, 0, 11, &[0, 0, 0, 1]),
            &frame(0, 1, 11, m2),
        ]);
        assert_eq!(parse(Socket::Containerd, &bytes), want);
        check_prefixes(Socket::Containerd, &bytes);
        // Frames out of the protocol's order end the reading: a stream 0 DATA, an even stream, a
        // CONTINUATION with no block open, a frame between a block's frames, a PUSH_PROMISE.
        for bad in [
            frame(0, 1, 0, &message),
            frame(1, 4, 2, &block),
            frame(9, 4, 1, &block),
            join(&[&frame(1, 0, 1, a), &frame(0, 1, 1, &message)]),
            frame(5, 4, 1, &block),
        ] {
            let bytes = join(&[&bad, &call("/runtime.v1.RuntimeService/StopContainer", &stop_container(CID, 12))]);
            assert_eq!(parse(Socket::Containerd, &bytes), vec![]);
        }
    }

    #[test]
    fn huffman_decodes_rfc_7541_s_examples_and_rejects_bad_padding() {
        for (code, text) in [
            ("f1e3c2e5f23a6ba0ab90f4ff", "www.example.com"),
            ("a8eb10649cbf", "no-cache"),
            ("25a849e95ba97d7f", "custom-key"),
            ("25a849e95bb8e8b4bf", "custom-value"),
            ("6402", "302"),
            ("aec3771a4b", "private"),
            ("d07abe941054d444a8200595040b8166e082a62d1bff", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("9d29ad171863c78f0b97c8e9ae82ae43d3", "https://www.example.com"),
        ] {
            assert_eq!(huffman::decode(&hex(code)).as_deref(), Some(text.as_bytes()), "{text}");
            assert_eq!(huffman::encode(text.as_bytes()), hex(code), "{text}");
        }
        assert_eq!(huffman::kraft_sum(), 1 << 30, "the code is complete: every bit string decodes or is EOS");
        // Padding of 8 bits or more, padding of zeros, and EOS itself.
        for bad in ["1fff", "18", "ffffffff", "fffffffc"] {
            assert_eq!(huffman::decode(&hex(bad)), None, "{bad}");
        }
    }

    // ---- What a tonic (h2) client writes -----------------------------------------------------

    /// The bytes a tonic client (h2, as containerd-client and k8s-cri use it) writes for `call`, read
    /// by a socket that answers with its SETTINGS only, up to the first DATA frame that ends a stream.
    fn h2_capture<F, Fut>(call: F) -> Vec<u8>
    where
        F: FnOnce(containerd_client::tonic::transport::Channel) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "podsig-wire-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let bytes = rt.block_on(async {
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path).expect("bind");
            let server = tokio::spawn(async move {
                let (mut sock, _) = listener.accept().await.expect("accept");
                sock.write_all(&frame(4, 0, 0, &[])).await.expect("settings");
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !ends_a_stream(&got) {
                    let n = sock.read(&mut buf).await.expect("read");
                    assert!(n > 0, "the client closed before its request");
                    got.extend(&buf[..n]);
                }
                got
            });
            let channel = containerd_client::connect(&path).await.expect("connect");
            let client = tokio::spawn(call(channel));
            let got = tokio::time::timeout(std::time::Duration::from_secs(20), server).await;
            client.abort();
            got.expect("the request within 20 s").expect("server")
        });
        let _ = std::fs::remove_file(&path);
        bytes
    }

    fn ends_a_stream(b: &[u8]) -> bool {
        let mut pos = if b.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") { 24 } else { return false };
        while let Some(h) = b.get(pos..pos + 9) {
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            if pos + 9 + len > b.len() {
                return false;
            }
            if h[3] == 0 && h[4] & 1 != 0 {
                return true;
            }
            pos += 9 + len;
        }
        false
    }

    #[test]
    fn grpc_what_tonic_writes_for_each_stop() {
        use containerd_client::services::v1 as ctd;
        use k8s_cri::v1 as cri;
        let pod = "9a8b7c6d".repeat(8);
        let captures = [
            (
                h2_capture(|ch| async move {
                    let r = ctd::KillRequest { container_id: CID.into(), signal: 9, ..Default::default() };
                    let _ = ctd::tasks_client::TasksClient::new(ch).kill(r).await;
                }),
                signal(req("Kill", CID), 9),
            ),
            (
                h2_capture(|ch| async move {
                    let r = ctd::DeleteTaskRequest { container_id: CID.into() };
                    let _ = ctd::tasks_client::TasksClient::new(ch).delete(r).await;
                }),
                req("DeleteTask", CID),
            ),
            (
                h2_capture(|ch| async move {
                    let r = ctd::DeleteContainerRequest { id: "web".into() };
                    let _ = ctd::containers_client::ContainersClient::new(ch).delete(r).await;
                }),
                req("DeleteContainer", "web"),
            ),
            (
                h2_capture(|ch| async move {
                    let r = cri::StopContainerRequest { container_id: CID.into(), timeout: 30 };
                    let _ = cri::runtime_service_client::RuntimeServiceClient::new(ch).stop_container(r).await;
                }),
                timeout(req("StopContainer", CID), 30),
            ),
            (
                h2_capture(|ch| async move {
                    let r = cri::RemoveContainerRequest { container_id: CID.into() };
                    let _ = cri::runtime_service_client::RuntimeServiceClient::new(ch).remove_container(r).await;
                }),
                req("RemoveContainer", CID),
            ),
            (
                h2_capture({
                    let pod = pod.clone();
                    |ch| async move {
                        let r = cri::StopPodSandboxRequest { pod_sandbox_id: pod };
                        let _ = cri::runtime_service_client::RuntimeServiceClient::new(ch).stop_pod_sandbox(r).await;
                    }
                }),
                req("StopPodSandbox", &pod),
            ),
            (
                h2_capture(|ch| async move {
                    let r = k8s_cri::v1alpha2::StopContainerRequest { container_id: CID.into(), timeout: 5 };
                    let _ = k8s_cri::v1alpha2::runtime_service_client::RuntimeServiceClient::new(ch)
                        .stop_container(r)
                        .await;
                }),
                timeout(req("StopContainer", CID), 5),
            ),
        ];
        for (bytes, want) in captures {
            assert_eq!(parse(Socket::Containerd, &bytes), vec![want.clone()], "{want:?}");
            check_prefixes(Socket::Containerd, &bytes);
        }
    }

    #[test]
    fn grpc_what_tonic_writes_for_queries_is_not_a_stop() {
        use containerd_client::services::v1 as ctd;
        use k8s_cri::v1 as cri;
        let captures = [
            h2_capture(|ch| async move {
                let r = ctd::GetContainerRequest { id: CID.into() };
                let _ = ctd::containers_client::ContainersClient::new(ch).get(r).await;
            }),
            h2_capture(|ch| async move {
                let _ = ctd::tasks_client::TasksClient::new(ch).list(ctd::ListTasksRequest::default()).await;
            }),
            h2_capture(|ch| async move {
                let r = ctd::SubscribeRequest::default();
                let _ = ctd::events_client::EventsClient::new(ch).subscribe(r).await;
            }),
            h2_capture(|ch| async move {
                let r = cri::ContainerStatusRequest { container_id: CID.into(), verbose: true };
                let _ = cri::runtime_service_client::RuntimeServiceClient::new(ch).container_status(r).await;
            }),
        ];
        for bytes in captures {
            assert_eq!(parse(Socket::Containerd, &bytes), vec![]);
        }
    }

    // ---- Any bytes ---------------------------------------------------------------------------

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        fn socket() -> impl Strategy<Value = Socket> {
            prop_oneof![
                Just(Socket::SystemdPrivate),
                Just(Socket::SystemBus),
                Just(Socket::Docker),
                Just(Socket::Containerd)
            ]
        }

        /// Real captures of each protocol, to mutate: random bytes alone rarely get past the
        /// first check.
        fn seeds() -> Vec<(Socket, Vec<u8>)> {
            let mut s: Vec<(Socket, Vec<u8>)> =
                dbus_stops().into_iter().map(|(c, _)| (Socket::SystemBus, join(&[&hex(SD_SASL), &hex(c)]))).collect();
            s.extend([DK_STOP, DK_RM_F, DK_KILL_S].map(|c| (Socket::Docker, join(&[&hex(DK_PING), &hex(c)]))));
            s.extend(
                [CTR_KILL, CTR_KILL_WAIT, CTR_CONTAINER_DELETE, CTR_GET_INDEXED]
                    .map(|c| (Socket::Containerd, join(&[&hex(CTR_PREFACE), &hex(c)]))),
            );
            s.push((
                Socket::Containerd,
                join(&[&frame(1, 4, 5, INDEXED_BLOCK), &frame(0, 1, 5, &grpc_message(&kill_request(CID, 9)))]),
            ));
            s
        }

        fn check(r: &[Request]) -> Result<(), TestCaseError> {
            for r in r {
                prop_assert!(!r.method.is_empty() && !r.object.is_empty(), "{r:?}");
                prop_assert!(r.signal.is_none_or(|s| (1..=64).contains(&s)), "{r:?}");
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(crate::fuzz_config(2000))]

            #[test]
            fn any_bytes_on_any_socket(socket in socket(), bytes in proptest::collection::vec(any::<u8>(), 0..1100)) {
                check(&parse(socket, &bytes))?;
            }

            #[test]
            fn real_captures_with_bytes_changed_cut_or_inserted(
                seed in any::<prop::sample::Index>(),
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
                cut in any::<prop::sample::Index>(),
            ) {
                let seeds = seeds();
                let (socket, mut bytes) = seeds[seed.index(seeds.len())].clone();
                for (at, byte, how) in edits {
                    let i = at.index(bytes.len());
                    match how {
                        0 => bytes[i] = byte,
                        1 => bytes.insert(i, byte),
                        _ => { bytes.remove(i); }
                    }
                }
                bytes.truncate(cut.index(bytes.len() + 1));
                check(&parse(socket, &bytes))?;
            }

            #[test]
            fn huffman_round_trips(text in proptest::collection::vec(any::<u8>(), 0..64)) {
                prop_assert_eq!(huffman::decode(&huffman::encode(&text)), Some(text));
            }

            #[test]
            fn huffman_any_bytes(code in proptest::collection::vec(any::<u8>(), 0..64)) {
                if let Some(text) = huffman::decode(&code) {
                    prop_assert!(text.len() <= code.len() * 8 / 5);
                }
            }
        }
    }
}
