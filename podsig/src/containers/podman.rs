//! podman's containers, named without asking podman. podman runs no daemon (its API socket
//! is off unless `podman system service` runs) and keeps names in its own database; what
//! is there while a container runs is its conmon, whose command line says the container's
//! ID (`-c`), name (`-n`) and pid file (`-p`). Finding the conmons is a pass over /proc,
//! made only when a podman container needs a name or a pid; node mode also reads, each
//! tick, the few processes pid 1 adopted, where conmons live.

use std::{collections::HashMap, fs, path::PathBuf};

use crate::containers::model::{ContainerInfo, Source};

/// podman's running containers (each with its init's pid, when known), from their conmons:
/// a pass over every process.
pub fn running() -> Vec<(ContainerInfo, Option<u32>)> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    from_conmons(dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()))
}

/// The same from the processes pid 1 adopted: conmon double-forks, so pid 1 is its parent
/// unless a subreaper sits between. A read of pid 1's children, cheap enough for every tick.
pub fn running_adopted() -> Vec<(ContainerInfo, Option<u32>)> {
    let Ok(threads) = fs::read_dir("/proc/1/task") else { return Vec::new() };
    let mut children = Vec::new();
    for t in threads.flatten() {
        if let Ok(list) = fs::read_to_string(t.path().join("children")) {
            children.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    from_conmons(children.into_iter())
}

fn from_conmons(pids: impl Iterator<Item = u32>) -> Vec<(ContainerInfo, Option<u32>)> {
    let mut out = Vec::new();
    for pid in pids {
        if fs::read(format!("/proc/{pid}/comm")).ok().as_deref() != Some(b"conmon\n") {
            continue;
        }
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let argv: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let Some(c) = parse(&argv) else { continue };
        let init = c
            .pidfile
            .and_then(|p| fs::read_to_string(p).ok()?.trim().parse::<u32>().ok())
            .or_else(|| first_child(pid))
            .filter(|&p| p > 0);
        let info = ContainerInfo { id: c.id, source: Source::Podman, labels: HashMap::new(), name: c.name };
        out.push((info, init));
    }
    out
}

fn first_child(pid: u32) -> Option<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?.split_whitespace().next()?.parse().ok()
}

#[derive(Debug, PartialEq)]
struct Conmon {
    id: String,
    name: Option<String>,
    pidfile: Option<PathBuf>,
}

/// conmon's other options that take a value (conmon 2.x).
const TAKES_VALUE: &[&str] = &[
    "-u",
    "--cuuid",
    "-r",
    "--runtime",
    "-b",
    "--bundle",
    "-l",
    "--log-path",
    "-T",
    "--timeout",
    "--api-version",
    "--conmon-pidfile",
    "--exit-dir",
    "--exit-command-arg",
    "--exit-delay",
    "--log-level",
    "--log-size-max",
    "--log-global-size-max",
    "--log-tag",
    "--persist-dir",
    "--runtime-arg",
    "--runtime-opt",
    "--sdnotify-socket",
    "--seccomp-notify-socket",
    "--seccomp-notify-plugins",
    "--socket-dir-path",
    "--exec-process-spec",
];

/// A conmon's arguments, when podman started it for a container: CRI-O's conmons have no
/// podman exit command, and a `podman exec` session's conmon (`-e`) is not the container's.
fn parse(argv: &[String]) -> Option<Conmon> {
    let mut opts: HashMap<&str, &str> = HashMap::new();
    let mut exec = false;
    let mut it = argv.iter().skip(1).map(String::as_str);
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v)),
            _ => (a, None),
        };
        let key = match key {
            "-c" | "--cid" => "cid",
            "-n" | "--name" => "name",
            "-p" | "--container-pidfile" => "pidfile",
            "--exit-command" => "exit-command",
            "-e" | "--exec" => {
                exec = true;
                continue;
            }
            // Options whose values are not looked at, skipped whole: a value may look like
            // one of the options above (podman's own flags ride in --exit-command-arg).
            k if TAKES_VALUE.contains(&k) => {
                if inline.is_none() {
                    it.next();
                }
                continue;
            }
            _ => continue,
        };
        if let Some(v) = inline.or_else(|| it.next()) {
            opts.insert(key, v);
        }
    }
    let by_podman = opts.get("exit-command").is_some_and(|c| c.rsplit('/').next() == Some("podman"));
    if exec || !by_podman {
        return None;
    }
    Some(Conmon {
        id: opts.get("cid").filter(|id| !id.is_empty())?.to_string(),
        name: opts.get("name").filter(|n| !n.is_empty()).map(|n| n.to_string()),
        pidfile: opts.get("pidfile").map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    const ID: &str = "9c71027bbb0db65d0ee97c37c3afda1c90c6a1e71dd8aa243f50babc491f0424";

    #[test]
    fn a_podman_containers_conmon() {
        // As podman 4.3 starts it (shortened).
        let argv = args(&format!(
            "/usr/bin/conmon --api-version 1 -c {ID} -u {ID} -r /usr/bin/crun -b /b/userdata \
             -p /run/containers/storage/overlay-containers/{ID}/userdata/pidfile -n web --exit-dir /run/libpod/exits \
             --full-attach -s -l k8s-file:/b/ctr.log --exit-command /usr/bin/podman --exit-command-arg --root \
             --exit-command-arg container --exit-command-arg cleanup --exit-command-arg {ID}"
        ));
        let c = parse(&argv).expect("podman's conmon");
        assert_eq!(c.id, ID);
        assert_eq!(c.name.as_deref(), Some("web"));
        assert_eq!(
            c.pidfile,
            Some(PathBuf::from(format!("/run/containers/storage/overlay-containers/{ID}/userdata/pidfile")))
        );
        let long = args(&format!("/usr/bin/conmon --cid={ID} --name=db --exit-command=/usr/local/bin/podman"));
        assert_eq!(parse(&long).map(|c| c.name), Some(Some("db".into())));
        // A value that looks like an option is a value.
        let tricky =
            args(&format!("/usr/bin/conmon -c {ID} -n web --exit-command-arg -n --exit-command /usr/bin/podman"));
        assert_eq!(parse(&tricky).and_then(|c| c.name).as_deref(), Some("web"));
    }

    #[test]
    fn not_a_podman_containers_conmon() {
        // A `podman exec` session.
        let exec = args(&format!("/usr/bin/conmon -c {ID} -u 1234 -n web -e --exit-command /usr/bin/podman"));
        assert_eq!(parse(&exec), None);
        // CRI-O's.
        let crio = args(&format!("/usr/bin/conmon -c {ID} -n k8s_app_web_default -r /usr/bin/crun"));
        assert_eq!(parse(&crio), None);
        assert_eq!(parse(&args("/usr/bin/conmon --version")), None);
    }
}
