//! tracefs: mounting it when missing, and reading classic tracepoint record layouts.

use std::{collections::HashMap, fs, io, path::Path};

use anyhow::{Context as _, Result, anyhow};
use podsig_common::{OomFormat, TracepointFormat};

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs where tools expect it, as bpftrace does: tracepoint formats and ids live
/// there, and a fresh host may not have it mounted.
pub fn ensure_mounted() -> Result<()> {
    if Path::new(TRACEFS).join("events").exists() {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    let (src, dst, fs) = (c("tracefs"), c(TRACEFS), c("tracefs"));
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(anyhow!("cannot mount tracefs at {TRACEFS}: {e} (mount it: mount -t tracefs tracefs {TRACEFS})"));
    }
    tracing::info!("mounted tracefs at {TRACEFS}");
    Ok(())
}

/// `name → (offset, size)` of a tracepoint's record fields, from its `format` file.
pub fn fields(category: &str, name: &str) -> Result<HashMap<String, (u32, u32)>> {
    let path = format!("{TRACEFS}/events/{category}/{name}/format");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(parse_format(&text))
}

/// Checks that a syscall tracepoint's record holds its first `args` arguments as the
/// request hooks read them: 8 bytes each, from offset 16 on (include/trace/syscall.h's
/// `syscall_trace_enter`). A kernel that lays them out otherwise is refused, not guessed at.
pub fn check_syscall_args(name: &str, args: usize) -> Result<()> {
    let f = fields("syscalls", name)?;
    let mut at: Vec<(u32, u32)> = f.values().copied().filter(|&(off, _)| off >= 16).collect();
    at.sort_unstable();
    let expected: Vec<(u32, u32)> = (0..args as u32).map(|i| (16 + 8 * i, 8)).collect();
    if at.len() < args || at[..args] != expected[..] {
        return Err(anyhow!("syscalls:{name} lays out its arguments as {at:?}, not 8 bytes each from offset 16"));
    }
    Ok(())
}

/// Parses lines like `field:char comm[16];<TAB>offset:20;<TAB>size:16;<TAB>signed:0;`.
pub fn parse_format(text: &str) -> HashMap<String, (u32, u32)> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut decl = None;
        let (mut offset, mut size) = (None, None);
        for part in line.trim().split(';') {
            let part = part.trim();
            if let Some(d) = part.strip_prefix("field:") {
                decl = Some(d);
            } else if let Some(o) = part.strip_prefix("offset:") {
                offset = o.parse().ok();
            } else if let Some(s) = part.strip_prefix("size:") {
                size = s.parse().ok();
            }
        }
        if let (Some(decl), Some(offset), Some(size)) = (decl, offset, size) {
            // The name is the last word, without any array suffix.
            let word = decl.split_whitespace().last().unwrap_or("");
            let name = word.split('[').next().unwrap_or("").to_string();
            out.insert(name, (offset, size));
        }
    }
    out
}

/// The fallback programs' view of signal_generate and sched_process_exit on this kernel.
pub fn tracepoint_format() -> Result<TracepointFormat> {
    let sg = fields("signal", "signal_generate")?;
    let ex = fields("sched", "sched_process_exit")?;
    let need = |m: &HashMap<String, (u32, u32)>, tp: &str, f: &str, size: u32| match m.get(f) {
        Some(&(off, sz)) if sz == size => Ok(off),
        Some(&(_, sz)) => Err(anyhow!("tracepoint {tp}: field {f} has size {sz}, expected {size}")),
        None => Err(anyhow!("tracepoint {tp} has no field {f} on this kernel")),
    };
    let sgn = "signal:signal_generate";
    let exn = "sched:sched_process_exit";
    Ok(TracepointFormat {
        sg_sig: need(&sg, sgn, "sig", 4)?,
        sg_errno: need(&sg, sgn, "errno", 4)?,
        sg_code: need(&sg, sgn, "code", 4)?,
        sg_comm: need(&sg, sgn, "comm", 16)?,
        sg_pid: need(&sg, sgn, "pid", 4)?,
        sg_group: need(&sg, sgn, "group", 4)?,
        sg_result: need(&sg, sgn, "result", 4)?,
        exit_comm: need(&ex, exn, "comm", 16)?,
        exit_pid: need(&ex, exn, "pid", 4)?,
        exit_group_dead: ex.get("group_dead").map_or(u32::MAX, |&(off, _)| off),
        _pad: 0,
    })
}

/// Layout of `oom:mark_victim`. Only `pid` is required; the memory figures were added over
/// the years (5.x) and are reported when present.
pub fn oom_format() -> Result<OomFormat> {
    let f = fields("oom", "mark_victim")?;
    let opt = |name: &str, size: u32| match f.get(name) {
        Some(&(off, sz)) if sz == size => off,
        _ => u32::MAX,
    };
    let pid = opt("pid", 4);
    if pid == u32::MAX {
        return Err(anyhow!("tracepoint oom:mark_victim has no pid field on this kernel"));
    }
    Ok(OomFormat {
        pid,
        total_vm: opt("total_vm", 8),
        anon_rss: opt("anon_rss", 8),
        file_rss: opt("file_rss", 8),
        shmem_rss: opt("shmem_rss", 8),
        pgtables: opt("pgtables", 8),
        oom_score_adj: opt("oom_score_adj", 2),
        _pad: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNAL_GENERATE: &str = "name: signal_generate
ID: 261
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:20;\tsize:16;\tsigned:0;
\tfield:pid_t pid;\toffset:36;\tsize:4;\tsigned:1;

print fmt: \"sig=%d\", REC->sig
";

    #[test]
    fn parses_recorded_format() {
        let f = parse_format(SIGNAL_GENERATE);
        assert_eq!(f["sig"], (8, 4));
        assert_eq!(f["comm"], (20, 16));
        assert_eq!(f["pid"], (36, 4));
        assert_eq!(f["common_type"], (0, 2));
        assert!(!f.contains_key("print"));
    }
}
