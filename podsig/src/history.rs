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
    sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
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

/// The recorder's handle on the store.
pub struct Writer {
    tx: Option<SyncSender<Record>>,
    thread: Option<JoinHandle<Result<()>>>,
    /// Records dropped because the writer fell behind, not yet reported.
    pub dropped: u64,
}

impl Writer {
    pub fn open(path: &Path, limits: Limits, gauges: Gauges) -> Result<Self> {
        if limits.max_bytes < MIN_MAX_BYTES {
            bail!("--history-max {} is too small: give at least {} MiB", limits.max_bytes, MIN_MAX_BYTES >> 20);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating {} for the history (--history PATH)", dir.display()))?;
        }
        let conn = open_rw(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("podsig-history".into())
            .spawn(move || write_loop(conn, &path, rx, &limits, &gauges))
            .context("starting the history writer")?;
        Ok(Self { tx: Some(tx), thread: Some(thread), dropped: 0 })
    }

    /// Queues a record (or counts it dropped when the writer is behind). False once the
    /// writer has stopped; its error comes from [`Writer::finish`].
    #[must_use]
    pub fn push(&mut self, record: Record) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Commits what is queued and stops the writer; its error, if it failed.
    pub fn finish(mut self) -> Result<()> {
        self.tx.take();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the history writer panicked"),
            None => Ok(()),
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

fn open_rw(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening the history {}", path.display()))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        bail!(
            "the history {} was written by a newer podsig (schema {version}); use that podsig or another --history",
            path.display()
        );
    }
    // auto_vacuum only takes effect before the first table is made.
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
    conn.pragma_update(None, "journal_mode", "WAL").context("switching the history to WAL")?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = {}; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};",
        4 << 20
    ))
    .with_context(|| format!("preparing the history {}", path.display()))?;
    Ok(conn)
}

fn write_loop(mut conn: Connection, path: &Path, rx: Receiver<Record>, limits: &Limits, gauges: &Gauges) -> Result<()> {
    // A batch and its log must fit beside the data within the bound.
    let batch_bytes = (limits.max_bytes / 16).min(8 << 20) as usize;
    let mut batch: Vec<(Row, String)> = Vec::with_capacity(MAX_BATCH);
    let mut last_age_prune = Instant::now() - Duration::from_secs(3600);
    loop {
        let Ok(first) = rx.recv() else { return Ok(()) };
        let mut bytes = 0;
        let add = |r: Record, batch: &mut Vec<(Row, String)>, bytes: &mut usize| -> Result<()> {
            let json = serde_json::to_string(&r)?;
            *bytes += json.len();
            batch.push((row(&r), json));
            Ok(())
        };
        add(first, &mut batch, &mut bytes)?;
        let deadline = Instant::now() + COMMIT_INTERVAL;
        let mut closed = false;
        while batch.len() < MAX_BATCH && bytes < batch_bytes {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(r) => add(r, &mut batch, &mut bytes)?,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        insert(&mut conn, &batch).with_context(|| format!("writing to the history {}", path.display()))?;
        batch.clear();
        let age_due = limits.max_age.is_some() && last_age_prune.elapsed() > Duration::from_secs(60);
        if age_due {
            last_age_prune = Instant::now();
        }
        prune(&conn, limits, age_due).with_context(|| format!("trimming the history {}", path.display()))?;
        if wal_bytes(path) > 2 * batch_bytes as u64 {
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        if let Some(g) = &gauges.bytes {
            g.set(file_bytes(path) as i64);
        }
        if closed {
            return Ok(());
        }
    }
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
    if let Some(c) = &q.container {
        // A prefix, as users paste short IDs; LIKE's wildcards in the ID are escaped.
        let escaped = c.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        eq("container_id LIKE ? ESCAPE '\\'", Value::Text(format!("{escaped}%")));
    }
    if let Some(n) = &q.container_name {
        eq("container_name = ?", Value::Text(n.clone()));
    }
    if let Some(p) = q.pid {
        eq("target_pid = ?", Value::Integer(p.into()));
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
        let mut w =
            Writer::open(&path, Limits { max_bytes: DEFAULT_MAX_BYTES, max_age: None }, Gauges::default()).unwrap();
        assert!(w.push(signal_in("web", 10, 9)));
        assert!(w.push(signal_in("db", 11, 15)));
        assert!(w.push(signal_in("web", 12, 15)));
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
        assert_eq!(pids(Query { pid: Some(11), ..Default::default() }), vec![11]);
        assert_eq!(pids(Query { last: Some(2), ..Default::default() }), vec![11, 12]);
        assert_eq!(pids(Query { namespace: Some("dev".into()), ..Default::default() }), Vec::<u32>::new());
        assert_eq!(pids(Query { since: Some(Duration::from_secs(3600)), ..Default::default() }).len(), 3);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn exits_are_found_by_their_container_and_with_signals() {
        let path = temp_db("exits");
        let mut w =
            Writer::open(&path, Limits { max_bytes: DEFAULT_MAX_BYTES, max_age: None }, Gauges::default()).unwrap();
        assert!(w.push(signal_in("web", 10, 15)));
        let (status, signal, core_dumped) = crate::event::ExitRecord::decode(0);
        assert!(w.push(Record::Exit(crate::event::ExitRecord {
            time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
            node: None,
            boot_ns: None,
            backend: "ebpf",
            pid: 10,
            tid: 10,
            comm: "server".into(),
            status,
            signal,
            core_dumped,
            container: Some(sample_container("web")),
            preceded_by: None,
            stop: None,
        })));
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
        let w = Writer::open(&path, Limits { max_bytes: max, max_age: None }, Gauges::default()).unwrap();
        for i in 0..20_000 {
            // The queue is far smaller than this: wait for the writer instead of dropping.
            while w.tx.as_ref().unwrap().try_send(signal_in("web", i, 9)).is_err() {
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
        let e = Writer::open(&temp_db("small"), Limits { max_bytes: 1000, max_age: None }, Gauges::default());
        assert!(e.err().unwrap().to_string().contains("too small"));
        let e = open_ro(Path::new("/nonexistent/history.db")).unwrap_err().to_string();
        assert!(e.contains("podsig record"), "{e}");
    }
}
