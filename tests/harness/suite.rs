//! Which tests may run beside which: see [`suite`].

/// Holds a test's place in its suite (see [`suite`]).
pub struct SuiteGuard;

static SUITES: (std::sync::Mutex<(Option<&'static str>, usize)>, std::sync::Condvar) =
    (std::sync::Mutex::new((None, 0)), std::sync::Condvar::new());

/// Every test's first line, with its file's `module_path!()`: the tests of one file run beside
/// each other, never beside another file's. Each file was a test binary of its own, and cargo
/// runs those one after another: the tests were written for that (node mode sees every
/// signal on the machine, storms load both cores, the container tests share one containerd).
pub fn suite(name: &'static str) -> SuiteGuard {
    let (lock, turn) = &SUITES;
    let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
    while s.0.is_some_and(|running| running != name) {
        s = turn.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    *s = (Some(name), s.1 + 1);
    SuiteGuard
}

impl Drop for SuiteGuard {
    fn drop(&mut self) {
        let (lock, turn) = &SUITES;
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        s.1 -= 1;
        if s.1 == 0 {
            s.0 = None;
            turn.notify_all();
        }
    }
}
