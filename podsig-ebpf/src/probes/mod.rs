//! One module per hook.

pub(crate) mod exit;
pub(crate) mod fork;
pub(crate) mod oom;
pub(crate) mod request;
pub(crate) mod signal;
