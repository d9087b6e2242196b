//! Signal and si_code names (Linux, x86-64/arm64 numbering), and parsing of `--signal`.

const NAMES: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// SIGRTMIN as user space numbers it: glibc (and with it bash, procps `kill`, `ps`) keeps
/// the kernel's first two real-time signals, 32 and 33, for itself (thread cancellation and
/// set*id() across threads), so `kill -s RTMIN+1` sends 35. Names follow what the user typed.
pub const SIGRTMIN: i32 = 34;
pub const SIGRTMAX: i32 = 64;

/// The kernel's real-time signals the C library reserves, by the names glibc gives them.
const LIBC_RESERVED: [(i32, &str); 2] = [(32, "CANCEL"), (33, "SETXID")];

/// `SIGKILL`, `SIGRTMIN+3`, `SIGLIBC32` for a signal the C library reserves, or `SIG123`
/// for what Linux does not define.
pub fn name(sig: i32) -> String {
    match sig {
        1..=31 => NAMES[(sig - 1) as usize].to_string(),
        32 | 33 => format!("SIGLIBC{sig}"),
        SIGRTMIN => "SIGRTMIN".to_string(),
        SIGRTMAX => "SIGRTMAX".to_string(),
        35..SIGRTMAX => format!("SIGRTMIN+{}", sig - SIGRTMIN),
        _ => format!("SIG{sig}"),
    }
}

/// What a signal's default action does to a process that has no handler for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// Ends the process (`Core`: with a core dump).
    Terminate,
    Core,
    Ignore,
    Stop,
    Continue,
}

/// signal(7)'s table; real-time signals terminate.
pub fn default_action(sig: i32) -> DefaultAction {
    match sig {
        libc::SIGQUIT
        | libc::SIGILL
        | libc::SIGTRAP
        | libc::SIGABRT
        | libc::SIGBUS
        | libc::SIGFPE
        | libc::SIGSEGV
        | libc::SIGXCPU
        | libc::SIGXFSZ
        | libc::SIGSYS => DefaultAction::Core,
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH => DefaultAction::Ignore,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => DefaultAction::Stop,
        libc::SIGCONT => DefaultAction::Continue,
        _ => DefaultAction::Terminate,
    }
}

/// The signal ends a process that has no handler for it.
pub fn terminates(sig: i32) -> bool {
    matches!(default_action(sig), DefaultAction::Terminate | DefaultAction::Core)
}

/// Parses `KILL`, `SIGKILL`, `kill`, `9`, `RTMIN+2`.
pub fn parse(s: &str) -> Result<i32, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(format!("signal number {n} is out of range 1..=64"))
        };
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(pos) = NAMES.iter().position(|n| &n[3..] == bare) {
        return Ok(pos as i32 + 1);
    }
    match bare {
        "IOT" => return Ok(6),
        "POLL" => return Ok(29),
        "RTMIN" => return Ok(SIGRTMIN),
        "RTMAX" => return Ok(SIGRTMAX),
        _ => {}
    }
    if let Some(&(n, _)) =
        LIBC_RESERVED.iter().find(|(n, glibc)| bare == *glibc || bare.strip_prefix("LIBC") == Some(&n.to_string()))
    {
        return Ok(n);
    }
    // bash and procps take both RTMIN+n and RTMAX-n for the same range.
    let span = SIGRTMAX - SIGRTMIN;
    if let Some(off) = bare.strip_prefix("RTMIN+").and_then(|o| o.parse::<i32>().ok())
        && (0..=span).contains(&off)
    {
        return Ok(SIGRTMIN + off);
    }
    if let Some(off) = bare.strip_prefix("RTMAX-").and_then(|o| o.parse::<i32>().ok())
        && (0..=span).contains(&off)
    {
        return Ok(SIGRTMAX - off);
    }
    Err(format!(
        "unknown signal '{s}' (use a name such as KILL, SIGTERM or RTMIN+1 (= 35, as kill(1) counts), or a number \
         1-64)"
    ))
}

/// Bit `n-1` set for each signal `n`; every signal when `sigs` is empty.
pub fn mask(sigs: &[i32]) -> u64 {
    if sigs.is_empty() {
        return u64::MAX;
    }
    sigs.iter().fold(0u64, |m, &s| m | (1u64 << (s - 1)))
}

/// si_code name. Positive codes mean different things per signal (include/uapi/asm-generic/
/// siginfo.h); non-positive ones are the generic "who sent it" codes.
pub fn code_name(sig: i32, code: i32) -> Option<&'static str> {
    let generic = match code {
        0 => Some("SI_USER"),
        0x80 => Some("SI_KERNEL"),
        -1 => Some("SI_QUEUE"),
        -2 => Some("SI_TIMER"),
        -3 => Some("SI_MESGQ"),
        -4 => Some("SI_ASYNCIO"),
        -5 => Some("SI_SIGIO"),
        -6 => Some("SI_TKILL"),
        -7 => Some("SI_DETHREAD"),
        -60 => Some("SI_ASYNCNL"),
        _ => None,
    };
    if code <= 0 || code == 0x80 {
        return generic;
    }
    let table: &[&str] = match sig {
        4 => &[
            "ILL_ILLOPC",
            "ILL_ILLOPN",
            "ILL_ILLADR",
            "ILL_ILLTRP",
            "ILL_PRVOPC",
            "ILL_PRVREG",
            "ILL_COPROC",
            "ILL_BADSTK",
            "ILL_BADIADDR",
        ],
        5 => &["TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT", "TRAP_UNK", "TRAP_PERF"],
        7 => &["BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR", "BUS_MCEERR_AO"],
        8 => &[
            "FPE_INTDIV",
            "FPE_INTOVF",
            "FPE_FLTDIV",
            "FPE_FLTOVF",
            "FPE_FLTUND",
            "FPE_FLTRES",
            "FPE_FLTINV",
            "FPE_FLTSUB",
            "FPE_FLTUNK",
            "FPE_CONDTRAP",
        ],
        11 => &[
            "SEGV_MAPERR",
            "SEGV_ACCERR",
            "SEGV_BNDERR",
            "SEGV_PKUERR",
            "SEGV_ACCADI",
            "SEGV_ADIDERR",
            "SEGV_ADIPERR",
            "SEGV_MTEAERR",
            "SEGV_MTESERR",
            "SEGV_CPERR",
        ],
        17 => &["CLD_EXITED", "CLD_KILLED", "CLD_DUMPED", "CLD_TRAPPED", "CLD_STOPPED", "CLD_CONTINUED"],
        29 => &["POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP"],
        31 => &["SYS_SECCOMP", "SYS_USER_DISPATCH"],
        _ => &[],
    };
    table.get(code as usize - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in 1..=64 {
            assert_eq!(parse(&name(n)).unwrap(), n, "{}", name(n));
        }
        assert_eq!(name(9), "SIGKILL");
    }

    /// As bash's and procps' `kill -s RTMIN+1` send it: glibc's SIGRTMIN is 34.
    #[test]
    fn real_time_signals_are_numbered_as_user_space_does() {
        assert_eq!(name(34), "SIGRTMIN");
        assert_eq!(name(35), "SIGRTMIN+1");
        assert_eq!(name(64), "SIGRTMAX");
        assert_eq!(parse("RTMIN+1").unwrap(), 35);
        assert_eq!(parse("SIGRTMAX-14").unwrap(), 50);
        assert_eq!(parse("rtmin").unwrap(), 34);
        assert_eq!(name(32), "SIGLIBC32");
        assert_eq!(name(33), "SIGLIBC33");
        assert_eq!(parse("CANCEL").unwrap(), 32);
        assert!(parse("RTMIN+31").is_err(), "past SIGRTMAX");
    }

    #[test]
    fn parse_accepts_forms_users_type() {
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("9").unwrap(), 9);
        assert!(parse("0").is_err());
        assert!(parse("65").is_err());
        assert!(parse("SIGFOO").unwrap_err().contains("SIGFOO"));
    }

    #[test]
    fn mask_selects_bits() {
        assert_eq!(mask(&[]), u64::MAX);
        assert_eq!(mask(&[9, 15]), (1 << 8) | (1 << 14));
        assert_eq!(mask(&[64]), 1 << 63);
    }

    #[test]
    fn code_names_depend_on_signal() {
        assert_eq!(code_name(9, 0), Some("SI_USER"));
        assert_eq!(code_name(9, 0x80), Some("SI_KERNEL"));
        assert_eq!(code_name(11, 1), Some("SEGV_MAPERR"));
        assert_eq!(code_name(7, 2), Some("BUS_ADRERR"));
        assert_eq!(code_name(15, -6), Some("SI_TKILL"));
        assert_eq!(code_name(15, 3), None);
    }
}
