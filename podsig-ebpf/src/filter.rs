//! Which processes are watched: the maps userspace keeps, and the tests on them.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap},
};
use podsig_common::{FilterConfig, TARGET_BITMAP_WORDS, TARGET_SIGNALLED};

/// bpf_map_update_elem: only if the key is not there yet.
pub(crate) const BPF_NOEXIST: u64 = 1;

/// Watched processes, kept current by userspace: tgid → tgid with BTF; in fallback mode,
/// where only the target's tid is known, every tid of a watched process → its tgid.
#[map]
pub(crate) static TARGETS: HashMap<u32, u32> = HashMap::with_max_entries(16384, 0);

/// One bit per pid userspace put in TARGETS (BTF mode), written by userspace only: the
/// miss path tests a bit (an array lookup the verifier inlines) instead of hashing. Forks
/// followed in the kernel set no bit: with follow_forks the hash is always asked.
#[map]
pub(crate) static TARGET_BITS: Array<u64> = Array::with_max_entries(TARGET_BITMAP_WORDS, 0);

#[inline(always)]
pub(crate) fn watched(tgid: u32, cfg: &FilterConfig) -> bool {
    cfg.watch_all != 0 || unsafe { TARGETS.get(&tgid).is_some() }
}

/// Node mode: a process that got a terminating signal is watched for its exit, so a stop
/// that ends without a SIGKILL (a handled SIGTERM, then exit) is told to the end. An entry
/// already there (the user's own target) is left as it is; a full map only loses the exit.
#[inline(always)]
pub(crate) fn arm_exit(key: u32, sig: i32, exit_mask: u64) {
    if (1..=64).contains(&sig) && exit_mask & (1u64 << (sig - 1)) != 0 {
        let _ = TARGETS.insert(&key, &(key | TARGET_SIGNALLED), BPF_NOEXIST);
    }
}

#[inline(always)]
pub(crate) fn signal_wanted(sig: i32, cfg: &FilterConfig) -> bool {
    (1..=64).contains(&sig) && cfg.signal_mask & (1u64 << (sig - 1)) != 0
}
