//! Clients already connected to a manager's socket when podsig attaches: the kernel hooks
//! learn a connection at its `connect`, and kubelet's connection to containerd (or a
//! long-running Docker client's) was made before podsig started. The kernel's unix socket
//! diagnostics (sock_diag, as `ss -x` reads them) give each accepted connection on a
//! manager's path and its peer; /proc gives which process holds that peer, at which fd.
//!
//! Two fixed structs over one netlink request: written here rather than pulling in a
//! netlink stack for them.

use std::{
    collections::HashMap,
    fs, io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
};

use super::wire::Socket;

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const UDIAG_SHOW_NAME: u32 = 0x1;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;

/// (pid, fd, socket) of every client connected to one of `sockets` now, but process `skip`'s
/// (podsig's own connections, naming containers, are nobody's requests).
pub fn existing_clients(sockets: &[(PathBuf, Socket)], skip: u32) -> io::Result<Vec<(u32, u32, Socket)>> {
    let by_path: HashMap<Vec<u8>, Socket> =
        sockets.iter().map(|(p, s)| (p.as_os_str().as_encoded_bytes().to_vec(), *s)).collect();
    // The server side of each connection is bound to the manager's path; its peer is the
    // client's socket.
    let mut clients: HashMap<u32, Socket> = HashMap::new();
    for (name, peer) in unix_sockets()? {
        if let (Some(s), Some(peer)) = (by_path.get(&name), peer) {
            clients.insert(peer, *s);
        }
    }
    if clients.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for proc_dir in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = proc_dir.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid == skip {
            continue;
        }
        for fd in fs::read_dir(proc_dir.path().join("fd")).into_iter().flatten().flatten() {
            let Some(n) = fd.file_name().to_str().and_then(|f| f.parse::<u32>().ok()) else { continue };
            let Ok(link) = fs::read_link(fd.path()) else { continue };
            let inode = link.to_str().and_then(|l| l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok());
            if let Some(s) = inode.and_then(|i: u32| clients.get(&i)) {
                out.push((pid, n, *s));
            }
        }
    }
    Ok(out)
}

/// Every unix socket with a bound name: (name, peer's inode).
fn unix_sockets() -> io::Result<Vec<(Vec<u8>, Option<u32>)>> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct nlmsghdr (16) + struct unix_diag_req (24).
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req[28..32].copy_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER).to_ne_bytes());
    // SAFETY: sends `req` on our socket; the kernel is the default destination.
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: receives into `buf`, within its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut msgs = &buf[..n as usize];
        while msgs.len() >= 16 {
            let len = u32::from_ne_bytes(msgs[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(msgs[4..6].try_into().unwrap());
            // A list cut short is no list: a client left out would ask unseen.
            if len < 16 || len > msgs.len() {
                return Err(io::Error::other("sock_diag sent a malformed message"));
            }
            match kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => return Err(io::Error::other("sock_diag refused the unix socket dump")),
                _ => {
                    if let Some(s) = socket_entry(&msgs[16..len]) {
                        out.push(s);
                    }
                }
            }
            msgs = &msgs[((len + 3) & !3).min(msgs.len())..];
        }
        if n == 0 {
            return Ok(out);
        }
    }
}

/// One `unix_diag_msg` (16 bytes) and its attributes: the bound name and the peer.
fn socket_entry(m: &[u8]) -> Option<(Vec<u8>, Option<u32>)> {
    let mut attrs = m.get(16..)?;
    let (mut name, mut peer) = (None, None);
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        let data = &attrs[4..len];
        match kind {
            UNIX_DIAG_NAME => name = Some(data.split(|&b| b == 0).next().unwrap_or_default().to_vec()),
            UNIX_DIAG_PEER if data.len() >= 4 => peer = Some(u32::from_ne_bytes(data[..4].try_into().ok()?)),
            _ => {}
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    name.filter(|n| !n.is_empty()).map(|n| (n, peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    /// A real listener and a client connected before the scan: found, at its fd.
    #[test]
    fn a_connection_made_before_is_found() {
        let dir = std::env::temp_dir().join(format!("podsig-peers-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let path = dir.join("mgr.sock");
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let client = UnixStream::connect(&path).unwrap();
        let _server = listener.accept().unwrap();
        let found = existing_clients(&[(path.clone(), Socket::Docker)], 0).unwrap();
        let me = std::process::id();
        assert!(
            found.contains(&(me, client.as_raw_fd() as u32, Socket::Docker)),
            "{found:?} lacks our client fd {}",
            client.as_raw_fd()
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
