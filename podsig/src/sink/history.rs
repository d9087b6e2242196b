//! The flight recorder's store: every event `podsig record` saw, in one SQLite file, so
//! "who killed my pod" can be answered after the pod restarted.
//!
//! Each row keeps the record exactly as `watch -o json` prints it, plus the columns queries
//! need (time, target pid, container, pod). Writes happen on their own thread in batched
//! transactions committed at least every [`COMMIT_INTERVAL`]: a storm never waits on the
//! disk, and a `kill -9` loses at most the open batch. WAL mode lets `podsig history` read
//! while the recorder writes. The size bound is kept by dropping the oldest rows and
//! handing their pages back to the file system (incremental vacuum).

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use rusqlite::{Connection, OpenFlags, params, params_from_iter, types::Value};

use crate::event::Record;

pub const DEFAULT_PATH: &str = "/var/lib/podsig/history.db";
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// Below this the bound could not hold a single batch and its write-ahead log.
pub const MIN_MAX_BYTES: u64 = 4 << 20;
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(500);
const MAX_BATCH: usize = 2000;
/// Records waiting for the writer (each a few KiB with its ancestry); beyond this a storm's
/// records are dropped and counted, so the recorder's memory stays bounded.
const QUEUE: usize = 2048;
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    node TEXT,
    signal INTEGER,
    target_pid INTEGER,
    container_id TEXT,
    container_name TEXT,
    pod TEXT,
    namespace TEXT,
    sender_comm TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (time_ns);
CREATE INDEX IF NOT EXISTS events_pod ON events (pod, namespace);
CREATE INDEX IF NOT EXISTS events_container ON events (container_id);
CREATE INDEX IF NOT EXISTS events_target_pid ON events (target_pid);
";

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_age: Option<Duration>,
}

/// What the writer thread reports to metrics.
#[derive(Clone, Default)]
pub struct Gauges {
    pub bytes: Option<prometheus_client::metrics::gauge::Gauge>,
}

/// Who may read the history: the files hold every signal sender's command line. 0600 (root
/// only) by default; 0640 with a group (`--history-group`) whose members may run
/// `podsig history`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub group: Option<u32>,
}

impl Access {
    fn file_mode(self) -> u32 {
        if self.group.is_some() { 0o640 } else { 0o600 }
    }

    fn dir_mode(self) -> u32 {
        if self.group.is_some() { 0o750 } else { 0o700 }
    }

    /// Gives `path` this mode and group (an existing history from an older podsig may be
    /// world-readable).
    fn apply(self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let meta = std::fs::metadata(path)?;
        if meta.mode() & 0o7777 != self.file_mode() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.file_mode()))?;
        }
        if let Some(gid) = self.group.filter(|&g| g != meta.gid()) {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        Ok(())
    }
}

/// `--history-group`: a group name (from this host's group database) or a number.
pub fn parse_group(s: &str) -> Result<u32, String> {
    if let Ok(gid) = s.trim().parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || format!("no group '{s}' on this host (give a group name or a number)");
    let name = std::ffi::CString::new(s).map_err(|_| unknown())?;
    // SAFETY: getgrnam_r writes only into `grp` and `buf`, both ours and sized as given.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 1 << 16];
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(name.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut found);
        if rc == 0 && !found.is_null() { Ok(grp.gr_gid) } else { Err(unknown()) }
    }
}

/// How often a stopped store is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// `PRAGMA application_id` of a podsig history ("PDSG"), so another program's SQLite file is
/// never taken for one.
const APPLICATION_ID: i64 = 0x5044_5347;

/// The recorder's handle on the store.
pub struct Writer {
    /// Boxed: the channel allocates (and touches) every slot up front, and a record is
    /// over a KiB inline: 2048 of them were 2.5 MiB of the recorder's memory, always.
    tx: Option<SyncSender<Box<Record>>>,
    thread: Option<JoinHandle<()>>,
    /// Records dropped because the writer fell behind, not yet reported.
    pub dropped: u64,
    /// Records the writer could not store (full, read-only or failing file system), not yet
    /// reported to metrics; the writer says so on stderr itself.
    unstored: Arc<AtomicU64>,
}

impl Writer {
    /// Opens (or creates) the store. A file that is not a podsig history (corrupt, another
    /// program's) is moved aside and a new one started; a file system that is full,
    /// read-only or failing does not stop the recorder: storing starts once it can.
    pub fn open(path: &Path, limits: Limits, gauges: Gauges, access: Access) -> Result<Self> {
        if limits.max_bytes < MIN_MAX_BYTES {
            bail!("--history-max {} is too small: give at least {} MiB", limits.max_bytes, MIN_MAX_BYTES >> 20);
        }
        if path.is_dir() {
            bail!("the history {} is a directory: give a file (--history PATH)", path.display());
        }
        let unstored = Arc::new(AtomicU64::new(0));
        let mut store = Store {
            path: path.to_path_buf(),
            access,
            batch_bytes: batch_bytes(limits.max_bytes),
            limits,
            gauges,
            conn: None,
            stopped: None,
            unstored: unstored.clone(),
            last_age_prune: None,
            may_create: true,
        };
        match store.connect() {
            Ok(()) => {}
            Err(Fault::Storage(why) | Fault::Corrupt(why)) => store.stop(&why),
            Err(Fault::Fatal(e)) => return Err(e),
        }
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("podsig-history".into())
            .spawn(move || store.run(rx))
            .context("starting the history writer")?;
        Ok(Self { tx: Some(tx), thread: Some(thread), dropped: 0, unstored })
    }

    /// Queues a record (or counts it dropped when the writer is behind). False once the
    /// writer has stopped.
    #[must_use]
    pub fn push(&mut self, record: Record) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(Box::new(record)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Records the store could not take since the last call (for metrics).
    pub fn take_unstored(&self) -> u64 {
        self.unstored.swap(0, Ordering::Relaxed)
    }

    /// Commits what is queued and stops the writer.
    pub fn finish(mut self) -> Result<()> {
        self.tx.take();
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => bail!("the history writer panicked"),
            _ => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A batch and its log must fit beside the data within the bound. At most 1 MiB: the batch
/// is held in memory, and a storm of distinct senders (each record a few KiB with its
/// ancestry) would otherwise hold several MiB between commits; smaller batches only commit
/// more often during such a storm.
fn batch_bytes(max_bytes: u64) -> usize {
    (max_bytes / 16).min(1 << 20) as usize
}

/// Why the store could not be used.
enum Fault {
    /// The file is not a podsig history, or is damaged: moved aside, a new one started.
    Corrupt(String),
    /// The file system is full, read-only, failing, or another writer holds the file:
    /// storing stops until it works again.
    Storage(String),
    /// Bad input (a newer podsig's history, a path that cannot be a file): the command
    /// fails with this.
    Fatal(anyhow::Error),
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error's chain on one line, down to SQLite's own words (not its code repeated).
fn why(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(one_line(&cause.to_string()));
        if cause.downcast_ref::<rusqlite::Error>().is_some() {
            break;
        }
    }
    parts.join(": ")
}

/// What an error from SQLite or the file system means for the store.
fn fault(e: &anyhow::Error) -> Fault {
    use rusqlite::ErrorCode as C;
    let why = why(e);
    for cause in e.chain() {
        if let Some(rusqlite::Error::SqliteFailure(f, _)) = cause.downcast_ref::<rusqlite::Error>() {
            return match f.code {
                C::DatabaseCorrupt | C::NotADatabase => Fault::Corrupt(why),
                _ => Fault::Storage(why),
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EROFS | libc::EIO | libc::EDQUOT))
        {
            return Fault::Storage(why);
        }
    }
    Fault::Fatal(anyhow::anyhow!(why))
}

/// The writer thread's store: its connection while storing works, none while it is stopped
/// (so the file system can be remounted or checked meanwhile).
struct Store {
    path: PathBuf,
    access: Access,
    limits: Limits,
    gauges: Gauges,
    conn: Option<Connection>,
    /// Since when storing is stopped, and how many records were not stored since.
    stopped: Option<(Instant, u64)>,
    unstored: Arc<AtomicU64>,
    batch_bytes: usize,
    last_age_prune: Option<Instant>,
    /// Whether a missing file may be made: until the first file is opened, and after one
    /// is moved aside. Later a missing file means its file system is away (unmounted to be
    /// checked): making one then would write beneath the mount point, hidden once the file
    /// system is back.
    may_create: bool,
}

type Batch = Vec<(Row, String)>;

impl Store {
    /// Opens the file, making it first if needed (with its mode, before SQLite writes a
    /// byte: its log and shared-memory files take the database's mode and owner). A file
    /// that is not a podsig history is moved aside and a new one made.
    fn connect(&mut self) -> Result<(), Fault> {
        match self.try_connect() {
            Err(Fault::Corrupt(why)) => {
                self.set_aside(&why)?;
                self.try_connect().map_err(|f| match f {
                    Fault::Corrupt(why) => Fault::Fatal(anyhow::anyhow!(
                        "the history {} cannot be started anew: {why}",
                        self.path.display()
                    )),
                    f => f,
                })
            }
            r => r,
        }
    }

    fn set_aside(&mut self, why: &str) -> Result<(), Fault> {
        self.conn = None;
        let aside = move_aside(&self.path).map_err(|e| fault(&e))?;
        self.may_create = true;
        eprintln!(
            "podsig: the history {} is not a podsig history or is damaged ({why}): moved it to {}, starting a new one",
            self.path.display(),
            aside.display()
        );
        Ok(())
    }

    fn try_connect(&mut self) -> Result<(), Fault> {
        self.conn = None;
        if !self.may_create && !self.path.exists() {
            return Err(Fault::Storage(format!(
                "the history {} is not there (its file system unmounted?); waiting for it to come back",
                self.path.display()
            )));
        }
        not_someone_elses(&self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(self.access.dir_mode())
                .create(dir)
                .and_then(|()| match self.access.group {
                    Some(gid) => std::os::unix::fs::chown(dir, None, Some(gid)),
                    None => Ok(()),
                })
                .map_err(|e| {
                    fault(&anyhow::Error::new(e).context(format!("creating {} for the history", dir.display())))
                })?;
        }
        let io = |e: std::io::Error| {
            fault(&anyhow::Error::new(e).context(format!("opening the history {} for writing", self.path.display())))
        };
        if !self.path.exists() {
            use std::os::unix::fs::OpenOptionsExt as _;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.access.file_mode())
                .open(&self.path)
            {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(e)),
                _ => {}
            }
        }
        let conn = open_rw(&self.path)?;
        // Only once it is known to be a history: another program's file keeps its mode.
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.as_os_str().to_owned();
            p.push(suffix);
            match self.access.apply(Path::new(&p)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => r.map_err(io)?,
            }
        }
        self.conn = Some(conn);
        self.may_create = false;
        Ok(())
    }

    /// Storing stops: one line, and the files are let go of.
    fn stop(&mut self, why: &str) {
        self.conn = None;
        if self.stopped.is_none() {
            eprintln!(
                "podsig: storing stopped: {why}; still watching and printing; events not stored are counted \
                 (podsig_history_dropped_total); storing resumes by itself"
            );
            self.stopped = Some((Instant::now(), 0));
        }
    }

    fn not_stored(&mut self, n: u64) {
        self.unstored.fetch_add(n, Ordering::Relaxed);
        if let Some((_, count)) = &mut self.stopped {
            *count += n;
        }
    }

    /// Writes the batch (an empty one: a write that proves the store works); false, the
    /// batch kept, while storing is stopped.
    fn commit(&mut self, batch: &mut Batch) -> bool {
        self.commit_or_set_aside(batch, true)
    }

    fn commit_or_set_aside(&mut self, batch: &mut Batch, set_aside: bool) -> bool {
        if self.conn.is_none()
            && let Err(f) = self.connect()
        {
            self.stop(&fault_text(f));
            return false;
        }
        let conn = self.conn.as_mut().expect("connected");
        let written = if batch.is_empty() {
            conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};")).map_err(anyhow::Error::from)
        } else {
            insert(conn, batch)
        };
        if let Err(e) = written {
            let e = e.context(format!("writing to the history {}", self.path.display()));
            match fault(&e) {
                // Damaged under us: set it aside and write to a new one.
                Fault::Corrupt(why) if set_aside => match self.set_aside(&why) {
                    Ok(()) => return self.commit_or_set_aside(batch, false),
                    Err(f) => self.stop(&fault_text(f)),
                },
                f => self.stop(&fault_text(f)),
            }
            return false;
        }
        batch.clear();
        if let Some((since, n)) = self.stopped.take() {
            eprintln!(
                "podsig: storing resumed in {} after {} s; {n} events were not stored",
                self.path.display(),
                since.elapsed().as_secs()
            );
        }
        let age_due =
            self.limits.max_age.is_some() && self.last_age_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(60));
        if age_due {
            self.last_age_prune = Some(Instant::now());
        }
        let conn = self.conn.as_ref().expect("connected");
        // Trimming needs room too; when there is none, the next write says so.
        if let Err(e) = prune(conn, &self.limits, age_due) {
            tracing::debug!("trimming the history {}: {e:#}", self.path.display());
        }
        if wal_bytes(&self.path) > 2 * self.batch_bytes as u64
            && let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        {
            tracing::debug!("checkpointing the history {}: {e:#}", self.path.display());
        }
        if let Some(g) = &self.gauges.bytes {
            g.set(file_bytes(&self.path) as i64);
        }
        true
    }

    /// The writer thread: batches committed every [`COMMIT_INTERVAL`] (or when full). While
    /// storing is stopped, one batch is held and tried again every [`RETRY_INTERVAL`] (an
    /// empty one too, so storing resumes without waiting for an event); records beyond it
    /// are counted as not stored.
    fn run(mut self, rx: Receiver<Box<Record>>) {
        let mut batch: Batch = Vec::new();
        let mut bytes = 0usize;
        let mut due: Option<Instant> = self.stopped.map(|_| Instant::now() + RETRY_INTERVAL);
        let mut closed = false;
        while !closed {
            let got = match due {
                Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match got {
                Ok(r) => {
                    if batch.len() >= MAX_BATCH || bytes >= self.batch_bytes {
                        // Only while stopped: a running store commits a full batch at once.
                        self.not_stored(1);
                    } else {
                        match serde_json::to_string(&r) {
                            Ok(json) => {
                                bytes += json.len();
                                batch.push((row(&r), json));
                            }
                            Err(e) => {
                                tracing::warn!("a record could not be stored: {e}");
                                self.not_stored(1);
                            }
                        }
                    }
                    let due = *due.get_or_insert_with(|| Instant::now() + COMMIT_INTERVAL);
                    let full = batch.len() >= MAX_BATCH || bytes >= self.batch_bytes;
                    // A steady stream never times out: the time is checked here too.
                    if !(full && self.stopped.is_none()) && Instant::now() < due {
                        continue;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => closed = true,
            }
            if closed && batch.is_empty() && self.stopped.is_none() {
                break;
            }
            if self.commit(&mut batch) {
                bytes = 0;
                due = None;
            } else {
                due = Some(Instant::now() + RETRY_INTERVAL);
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            self.not_stored(n);
            eprintln!("podsig: stopping with {n} events not stored in the history {}", self.path.display());
        }
    }
}

fn fault_text(f: Fault) -> String {
    match f {
        Fault::Corrupt(why) | Fault::Storage(why) => why,
        Fault::Fatal(e) => one_line(&format!("{e:#}")),
    }
}

/// A file at the history's path that is not SQLite at all is damaged (moved aside) only if
/// podsig could have made it: private, as podsig makes its files. A world-readable one is
/// someone else's (a mistyped `--history /etc/passwd`), and is neither moved nor
/// re-permissioned.
fn not_someone_elses(path: &Path) -> Result<(), Fault> {
    use std::{io::Read as _, os::unix::fs::MetadataExt as _};
    let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    let sqlite = &head[..n] == b"SQLite format 3\0";
    let blank = head[..n].iter().all(|&b| b == 0);
    if !sqlite && !blank && meta.mode() & 0o004 != 0 {
        return Err(Fault::Fatal(anyhow::anyhow!(
            "{} is not a SQLite file, nor one podsig made (mode {:o}): not touching it; give another --history",
            path.display(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Moves a file that is not (or no longer) a usable history aside, with its log, as
/// `PATH.broken-YYYYMMDDTHHMMSSZ`, for whoever wants to look at it.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let named = |n: u32| {
        let mut p = path.as_os_str().to_owned();
        p.push(if n == 0 { format!(".broken-{stamp}") } else { format!(".broken-{stamp}-{n}") });
        PathBuf::from(p)
    };
    let aside = (0..).map(named).find(|p| !p.exists()).expect("a free name");
    std::fs::rename(path, &aside).with_context(|| format!("moving the history {} aside", path.display()))?;
    for (suffix, keep) in [("-wal", true), ("-shm", false)] {
        let mut from = path.as_os_str().to_owned();
        from.push(suffix);
        let mut to = aside.as_os_str().to_owned();
        to.push(suffix);
        let _ = if keep { std::fs::rename(&from, &to) } else { std::fs::remove_file(&from) };
    }
    Ok(aside)
}

/// Opens the history for writing: a new file gets the schema; an existing one must be a
/// podsig history (else `Corrupt`: it is moved aside). Opening an existing history writes
/// nothing, so a full or read-only file system shows at the first write.
fn open_rw(path: &Path) -> Result<Connection, Fault> {
    let ctx =
        |e: rusqlite::Error| fault(&anyhow::Error::new(e).context(format!("opening the history {}", path.display())));
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(ctx)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(ctx)?;
    let app: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(ctx)?;
    if version > SCHEMA_VERSION && app == APPLICATION_ID {
        return Err(Fault::Fatal(anyhow::anyhow!(
            "the history {} was written by a newer podsig (schema {version}); use that podsig or another --history",
            path.display()
        )));
    }
    let names = |sql: &str| -> Result<Vec<String>, Fault> {
        let mut stmt = conn.prepare(sql).map_err(ctx)?;
        stmt.query_map([], |r| r.get(0)).and_then(|rows| rows.collect()).map_err(ctx)
    };
    let tables = names("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")?;
    let columns = names("SELECT name FROM pragma_table_info('events')")?;
    let ours = ["time_ns", "kind", "signal", "target_pid", "container_id", "pod", "namespace", "record"];
    let foreign = if app != 0 && app != APPLICATION_ID {
        Some(format!("its application id is {app:#x}, not podsig's"))
    } else if version > SCHEMA_VERSION {
        Some(format!("schema version {version} without podsig's application id"))
    } else if !tables.is_empty() && !ours.iter().all(|c| columns.iter().any(|have| have == c)) {
        Some(format!("it holds tables {} and not podsig's events", tables.join(", ")))
    } else {
        None
    };
    if let Some(why) = foreign {
        return Err(Fault::Corrupt(why));
    }
    if tables.is_empty() {
        // New: auto_vacuum only takes effect before the first table is made.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;").map_err(ctx)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(ctx)?;
        conn.execute_batch(&format!(
            "{SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; PRAGMA application_id = {APPLICATION_ID};"
        ))
        .map_err(ctx)?;
    } else {
        // Already WAL when podsig made it: this reads, it does not write.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(ctx)?;
    }
    // FULL: each commit reaches the disk before it counts. Commits are batched (at most two
    // a second outside storms), so this costs little, and a node that loses power or a
    // disk the kernel takes read-only keeps what was committed: the answers are wanted
    // most after such a night.
    conn.execute_batch(&format!("PRAGMA synchronous = FULL; PRAGMA journal_size_limit = {};", 4 << 20)).map_err(ctx)?;
    // 1 MiB of page cache (SQLite's default is 2): the writer appends, and a query reads a
    // few index pages; the recorder's memory is what an operator budgets per node.
    conn.execute_batch("PRAGMA cache_size = -1024;").map_err(ctx)?;
    // Another recorder on the same file: wait a moment for its commit, then count it a
    // storage fault (storing stops and is tried again), never a crash.
    conn.busy_timeout(Duration::from_secs(1)).map_err(ctx)?;
    Ok(conn)
}

/// Columns the queries filter on, taken from a record.
struct Row {
    time_ns: i64,
    kind: &'static str,
    node: Option<String>,
    signal: Option<i32>,
    target_pid: Option<u32>,
    container_id: Option<String>,
    container_name: Option<String>,
    pod: Option<String>,
    namespace: Option<String>,
    sender_comm: Option<String>,
}

fn row(record: &Record) -> Row {
    let time_ns = |t: &str| {
        humantime::parse_rfc3339(t)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(now_ns, |d| d.as_nanos() as i64)
    };
    let empty = |time: &str, kind, node: &Option<String>| Row {
        time_ns: time_ns(time),
        kind,
        node: node.clone(),
        signal: None,
        target_pid: None,
        container_id: None,
        container_name: None,
        pod: None,
        namespace: None,
        sender_comm: None,
    };
    match record {
        Record::Signal(s) => {
            let c = s.target.container.as_ref();
            Row {
                signal: Some(s.signal.number),
                target_pid: Some(s.target.pid),
                container_id: c.map(|c| c.id.clone()),
                container_name: c.and_then(|c| c.name.clone()),
                pod: c.and_then(|c| c.pod.clone()),
                namespace: c.and_then(|c| c.namespace.clone()),
                sender_comm: s.sender.as_ref().map(|x| x.comm.clone()),
                ..empty(&s.time, "signal", &s.node)
            }
        }
        Record::Exit(e) => {
            let c = e.container.as_ref();
            Row {
                target_pid: Some(e.pid),
                container_id: c.map(|c| c.id.clone()),
                container_name: c.and_then(|c| c.name.clone()),
                pod: c.and_then(|c| c.pod.clone()),
                namespace: c.and_then(|c| c.namespace.clone()),
                ..empty(&e.time, "exit", &e.node)
            }
        }
        Record::Lost(l) => empty(&l.time, "lost", &l.node),
        Record::Oom(_) => empty("", "oom", &None),
        Record::Request(r) => empty(&r.time, "request", &r.node),
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

fn insert(conn: &mut Connection, batch: &[(Row, String)]) -> Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO events (time_ns, kind, node, signal, target_pid, container_id, container_name, pod, namespace, sender_comm, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for (r, json) in batch {
            stmt.execute(params![
                r.time_ns,
                r.kind,
                r.node,
                r.signal,
                r.target_pid,
                r.container_id,
                r.container_name,
                r.pod,
                r.namespace,
                r.sender_comm,
                json
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Pages in use (not on the free list), in bytes: what the rows take.
fn used_bytes(conn: &Connection) -> Result<u64> {
    let q = |p: &str| conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0));
    Ok(((q("page_count")? - q("freelist_count")?).max(0) * q("page_size")?) as u64)
}

/// The database file and its write-ahead log, as `du` would count them.
pub fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len()) + wal_bytes(path)
}

fn wal_bytes(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
}

/// Keeps the store within its bounds: rows past the age limit go; once the data passes 5/8
/// of the size limit, the oldest rows go until it is back under half. The rest is for the
/// write-ahead log and a batch (each at most 1/16 of the limit), and room to grow between
/// trims.
fn prune(conn: &Connection, limits: &Limits, age_due: bool) -> Result<()> {
    let mut deleted = 0;
    if let (true, Some(age)) = (age_due, limits.max_age) {
        let cutoff = now_ns() - age.as_nanos() as i64;
        deleted += conn.execute("DELETE FROM events WHERE time_ns < ?1", [cutoff])?;
    }
    let budget = limits.max_bytes * 5 / 8;
    let used = used_bytes(conn)?;
    if used > budget {
        let rows: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let keep = (rows as u128 * (budget * 3 / 4) as u128 / used as u128) as i64;
        deleted += conn.execute(
            "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1)",
            [keep],
        )?;
    }
    if deleted > 0 {
        conn.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")?;
        tracing::debug!("history: dropped {deleted} oldest events");
    }
    Ok(())
}

/// What `podsig history` asks for; every field narrows.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub pod: Option<String>,
    pub namespace: Option<String>,
    /// Full ID or a prefix, as `crictl ps` shows it.
    pub container: Option<String>,
    pub container_name: Option<String>,
    /// A systemd unit: read from the stored records (no column of its own).
    pub unit: Option<String>,
    pub pid: Option<u32>,
    pub signals: Vec<i32>,
    /// With `signals`: exits too (whose rows have no signal).
    pub with_exits: bool,
    pub since: Option<Duration>,
    /// The newest N matching events (still printed oldest first).
    pub last: Option<u32>,
}

/// Opens the store for reading; works while the recorder writes, and after it stopped
/// (even by `kill -9`: the write-ahead log is replayed).
pub fn open_ro(path: &Path) -> Result<Connection> {
    if !path.exists() {
        bail!("no history at {}: is `podsig record` running on this node? (or give --history PATH)", path.display());
    }
    if let Err(e) = std::fs::File::open(path)
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        bail!(
            "no read access to the history {}: it holds command lines, so only root reads it, or the group \
             `podsig record --history-group` named",
            path.display()
        );
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    // With no write-ahead log the recorder is not running (a clean stop removes it): the
    // file is read as immutable, so a reader who may not create the -shm file beside it
    // (not root) can still read. With a log, the recorder's -shm is there to share.
    let uri = if Path::new(&wal).exists() { sqlite_uri(path, "mode=ro") } else { sqlite_uri(path, "immutable=1") };
    let conn =
        Connection::open_with_flags(&uri, flags).with_context(|| format!("opening the history {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// `file:` URI for SQLite, with the characters URIs reserve escaped.
fn sqlite_uri(path: &Path, query: &str) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => uri += &format!("%{:02X}", c as u32),
            c => uri.push(c),
        }
    }
    format!("{uri}?{query}")
}

/// The stored records matching `q`, oldest first, as JSON lines exactly as recorded.
pub fn query(conn: &Connection, q: &Query) -> Result<Vec<String>> {
    let mut clauses = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(c) = &q.container {
        // An ID prefix, as users paste short IDs (LIKE's wildcards in it escaped), or the
        // name Docker or podman gave the container.
        let escaped = c.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        clauses.push("(container_id LIKE ?1 ESCAPE '\\' OR container_name = ?2)".to_string());
        args.push(Value::Text(format!("{escaped}%")));
        args.push(Value::Text(c.clone()));
    }
    let mut eq = |clause: &str, v: Value| {
        clauses.push(clause.replace('?', &format!("?{}", args.len() + 1)));
        args.push(v);
    };
    if let Some(p) = &q.pod {
        eq("pod = ?", Value::Text(p.clone()));
    }
    if let Some(n) = &q.namespace {
        eq("namespace = ?", Value::Text(n.clone()));
    }
    if let Some(n) = &q.container_name {
        eq("container_name = ?", Value::Text(n.clone()));
    }
    if let Some(p) = q.pid {
        eq("target_pid = ?", Value::Integer(p.into()));
    }
    if let Some(u) = &q.unit {
        eq(
            "coalesce(json_extract(record, '$.target.unit'), json_extract(record, '$.unit')) = ?",
            Value::Text(u.clone()),
        );
    }
    if let Some(s) = q.since {
        eq("time_ns >= ?", Value::Integer(now_ns() - s.as_nanos() as i64));
    }
    let mut sql = String::from("SELECT record FROM events");
    if !q.signals.is_empty() {
        let list: Vec<String> = q.signals.iter().map(i32::to_string).collect();
        let exits = if q.with_exits { " OR kind = 'exit'" } else { "" };
        clauses.push(format!("(signal IN ({}){exits})", list.join(",")));
    }
    if !clauses.is_empty() {
        sql += " WHERE ";
        sql += &clauses.join(" AND ");
    }
    sql += " ORDER BY id DESC";
    if let Some(n) = q.last {
        sql += &format!(" LIMIT {n}");
    }
    let mut stmt = conn.prepare(&sql).context("querying the history")?;
    let mut rows: Vec<String> = stmt
        .query_map(params_from_iter(args), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .context("reading the history")?;
    rows.reverse();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{sample_container, sample_signal};

    fn signal_in(pod: &str, pid: u32, sig: i32) -> Record {
        let mut s = sample_signal();
        s.time = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        s.target.pid = pid;
        s.signal = crate::event::SignalId::new(sig);
        s.target.container = Some(sample_container(pod));
        Record::Signal(s)
    }

    fn temp_db(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("podsig-history-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("history.db")
    }

    #[test]
    fn writes_then_answers_by_pod_pid_signal_and_prefix() {
        let path = temp_db("query");
        let mut w = Writer::open(
            &path,
            Limits { max_bytes: DEFAULT_MAX_BYTES, max_age: None },
            Gauges::default(),
            Access::default(),
        )
        .unwrap();
        assert!(w.push(signal_in("web", 10, 9)));
        assert!(w.push(signal_in("db", 11, 15)));
        assert!(w.push(signal_in("web", 12, 15)));
        let mut unit = signal_in("web", 13, 15);
        if let Record::Signal(s) = &mut unit {
            (s.target.container, s.target.unit) = (None, Some("nginx.service".into()));
        }
        assert!(w.push(unit));
        w.finish().unwrap();
        let conn = open_ro(&path).unwrap();
        let pids = |q: Query| -> Vec<u32> {
            query(&conn, &q)
                .unwrap()
                .iter()
                .map(|j| match serde_json::from_str::<Record>(j).unwrap() {
                    Record::Signal(s) => s.target.pid,
                    _ => 0,
                })
                .collect()
        };
        assert_eq!(pids(Query { pod: Some("web".into()), ..Default::default() }), vec![10, 12]);
        assert_eq!(pids(Query { pod: Some("web".into()), signals: vec![15], ..Default::default() }), vec![12]);
        assert_eq!(pids(Query { container: Some("db01".into()), ..Default::default() }), vec![11]);
        // By the container's name too (Docker's and podman's names are users' handles).
        assert_eq!(pids(Query { container: Some("app".into()), ..Default::default() }), vec![10, 11, 12]);
        assert_eq!(pids(Query { container: Some("ap".into()), ..Default::default() }), Vec::<u32>::new());
        assert_eq!(pids(Query { pid: Some(11), ..Default::default() }), vec![11]);
        assert_eq!(pids(Query { unit: Some("nginx.service".into()), ..Default::default() }), vec![13]);
        assert_eq!(pids(Query { last: Some(2), ..Default::default() }), vec![12, 13]);
        assert_eq!(pids(Query { namespace: Some("dev".into()), ..Default::default() }), Vec::<u32>::new());
        assert_eq!(pids(Query { since: Some(Duration::from_secs(3600)), ..Default::default() }).len(), 4);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn exits_are_found_by_their_container_and_with_signals() {
        let path = temp_db("exits");
        let mut w = Writer::open(
            &path,
            Limits { max_bytes: DEFAULT_MAX_BYTES, max_age: None },
            Gauges::default(),
            Access::default(),
        )
        .unwrap();
        assert!(w.push(signal_in("web", 10, 15)));
        let mut exit = crate::event::ExitRecord::new(crate::event::BackendName::Ebpf, 10, 10, "server".into(), Some(0));
        exit.time = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        exit.container = Some(sample_container("web"));
        assert!(w.push(Record::Exit(exit)));
        w.finish().unwrap();
        let conn = open_ro(&path).unwrap();
        let kinds = |q: Query| -> Vec<String> {
            query(&conn, &q)
                .unwrap()
                .iter()
                .map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap()["kind"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(kinds(Query { pod: Some("web".into()), ..Default::default() }), ["signal", "exit"]);
        assert_eq!(kinds(Query { pid: Some(10), signals: vec![15], ..Default::default() }), ["signal"]);
        assert_eq!(
            kinds(Query { pid: Some(10), signals: vec![15], with_exits: true, ..Default::default() }),
            ["signal", "exit"]
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn stays_within_its_size_bound() {
        let path = temp_db("bound");
        let max = MIN_MAX_BYTES;
        let w = Writer::open(&path, Limits { max_bytes: max, max_age: None }, Gauges::default(), Access::default())
            .unwrap();
        for i in 0..20_000 {
            // The queue is far smaller than this: wait for the writer instead of dropping.
            while w.tx.as_ref().unwrap().try_send(Box::new(signal_in("web", i, 9))).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        w.finish().unwrap();
        assert!(file_bytes(&path) <= max, "{} bytes > {max}", file_bytes(&path));
        let conn = open_ro(&path).unwrap();
        let newest = query(&conn, &Query { last: Some(1), ..Default::default() }).unwrap();
        assert!(newest[0].contains("\"pid\":19999"), "the newest event survives: {}", newest[0]);
        let all = query(&conn, &Query::default()).unwrap();
        assert!(all.len() < 20_000 && all.len() > 100, "oldest dropped first: {} left", all.len());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn uris_escape_what_sqlite_reserves() {
        assert_eq!(sqlite_uri(Path::new("/var/lib/podsig/h.db"), "mode=ro"), "file:/var/lib/podsig/h.db?mode=ro");
        assert_eq!(sqlite_uri(Path::new("/tmp/a?b#c%d.db"), "immutable=1"), "file:/tmp/a%3Fb%23c%25d.db?immutable=1");
    }

    #[test]
    fn refuses_a_bound_too_small_and_a_missing_store() {
        let e = Writer::open(
            &temp_db("small"),
            Limits { max_bytes: 1000, max_age: None },
            Gauges::default(),
            Access::default(),
        );
        assert!(e.err().unwrap().to_string().contains("too small"));
        let e = open_ro(Path::new("/nonexistent/history.db")).unwrap_err().to_string();
        assert!(e.contains("podsig record"), "{e}");
    }

    fn open_default(path: &Path, access: Access) -> Result<Writer> {
        Writer::open(path, Limits { max_bytes: DEFAULT_MAX_BYTES, max_age: None }, Gauges::default(), access)
    }

    fn mode_and_gid(p: &Path) -> (u32, u32) {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(p).unwrap();
        (m.mode() & 0o7777, m.gid())
    }

    fn with_suffix(p: &Path, s: &str) -> PathBuf {
        let mut o = p.as_os_str().to_owned();
        o.push(s);
        o.into()
    }

    #[test]
    fn the_files_are_private_or_group_readable() {
        let path = temp_db("modes").parent().unwrap().join("new-dir/history.db");
        let mut w = open_default(&path, Access::default()).unwrap();
        assert!(w.push(signal_in("web", 10, 9)));
        std::thread::sleep(COMMIT_INTERVAL * 2);
        // While the writer runs, its log and shared memory are there too.
        for p in [path.clone(), with_suffix(&path, "-wal"), with_suffix(&path, "-shm")] {
            assert_eq!(mode_and_gid(&p).0, 0o600, "{}", p.display());
        }
        assert_eq!(mode_and_gid(path.parent().unwrap()).0, 0o700);
        w.finish().unwrap();
        // An existing history (an older podsig made it 0644) is tightened; with a group it
        // is 0640 and that group's.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let gid = 65534;
        let w = open_default(&path, Access { group: Some(gid) }).unwrap();
        assert_eq!(mode_and_gid(&path), (0o640, gid));
        w.finish().unwrap();
        std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap()).unwrap();
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_moved_aside_and_a_new_history_started() {
        let aside_of = |path: &Path| -> Vec<PathBuf> {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let mut v: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&format!("{name}.broken-")))
                .collect();
            v.sort();
            v
        };
        let path = temp_db("corrupt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Not SQLite at all: world-readable, it is someone else's file and left alone.
        let text = b"this is not a database, it is a text file that happens to be here\n".repeat(100);
        std::fs::write(&path, &text).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = open_default(&path, Access::default()).err().unwrap().to_string();
        assert!(e.contains("not a SQLite file, nor one podsig made (mode 644)"), "{e}");
        assert_eq!(mode_and_gid(&path).0, 0o644);
        // Private, as podsig makes its files: a damaged history, moved aside.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut w = open_default(&path, Access::default()).unwrap();
        assert!(w.push(signal_in("web", 10, 9)));
        w.finish().unwrap();
        let aside = aside_of(&path);
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert!(std::fs::read(&aside[0]).unwrap().starts_with(b"this is not a database"));
        let conn = open_ro(&path).unwrap();
        assert_eq!(query(&conn, &Query::default()).unwrap().len(), 1, "a new history took the event");
        drop(conn);
        // Another program's SQLite file.
        std::fs::remove_file(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ann');").unwrap();
        drop(other);
        open_default(&path, Access::default()).unwrap().finish().unwrap();
        assert_eq!(aside_of(&path).len(), 2);
        // A newer podsig's history is refused, not moved: it is still someone's.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1)).unwrap();
        drop(conn);
        let e = open_default(&path, Access::default()).err().unwrap().to_string();
        assert!(e.contains("newer podsig"), "{e}");
        assert_eq!(aside_of(&path).len(), 2);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
