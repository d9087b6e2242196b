//! Who asked a manager: clients' requests on systemd's, the system bus's, Docker's and
//! containerd's control sockets, captured in the kernel as they are written (`wire` reads
//! what they ask for), kept for a while, and linked to the signals the manager then sends
//! (`stage`).

mod argv;
pub mod peers;
mod stage;
pub mod wire;

pub use self::{
    argv::unit_name,
    stage::{Requests, manager_sockets},
};
