//! Requests that clients write to a manager's control socket (systemd over D-Bus, Docker's API,
//! containerd's gRPC and the CRI), read from the bytes the kernel captured at the client's write, so
//! that a stop or kill the manager carries out can be traced to whoever asked for it.

pub mod wire;
