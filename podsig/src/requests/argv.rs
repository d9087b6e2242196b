//! What a manager's command-line client was told to do, from its argv: the link when the
//! bytes it wrote do not say (a gRPC method indexed from the connection's header table, a
//! message cut short). Only the clients people type, whose grammar is fixed: `systemctl`,
//! `docker`/`podman`/`nerdctl`, `ctr`, `crictl`.

use super::wire::{Request, Socket};

/// The stop-or-signal requests `argv` names, for a client writing to `socket`.
pub(super) fn requests(socket: Socket, argv: &[String]) -> Vec<Request> {
    let Some(prog) = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a)) else { return Vec::new() };
    let words: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    match (socket, prog) {
        (Socket::SystemdPrivate | Socket::SystemBus, "systemctl") => systemctl(&words),
        (Socket::Docker, "docker" | "podman" | "nerdctl") => docker(&words),
        (Socket::Containerd, "ctr") => ctr(&words),
        (Socket::Containerd, "crictl") => crictl(&words),
        _ => Vec::new(),
    }
}

fn request(method: &str, object: &str) -> Request {
    Request { method: method.into(), object: object.into(), mode: None, signal: None, timeout_s: None, inferred: false }
}

/// `-s KILL`, `--signal=KILL`, `--signal KILL`: the value of an option, whichever form.
fn option<'a>(words: &[&'a str], short: &str, long: &str) -> Option<&'a str> {
    words.iter().enumerate().find_map(|(i, w)| {
        if let Some(v) = w.strip_prefix(&format!("{long}=")) {
            Some(v)
        } else if *w == short || *w == long {
            words.get(i + 1).copied()
        } else {
            None
        }
    })
}

/// The words that are not options (nor an option's value, for the options listed).
fn operands<'a>(words: &[&'a str], with_value: &[&str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut skip = false;
    for w in words {
        if skip {
            skip = false;
        } else if w.starts_with('-') {
            skip = with_value.contains(w);
        } else {
            out.push(*w);
        }
    }
    out
}

fn signal(v: Option<&str>) -> Option<i32> {
    v.and_then(|s| crate::signals::parse(s).ok())
}

fn systemctl(words: &[&str]) -> Vec<Request> {
    let ops = operands(words, &["-s", "--signal", "--kill-whom", "--kill-value", "-H", "--host", "-M", "--machine"]);
    let Some((verb, units)) = ops.split_first() else { return Vec::new() };
    let method = match *verb {
        "stop" => "StopUnit",
        "restart" => "RestartUnit",
        "try-restart" | "condrestart" => "TryRestartUnit",
        "reload-or-restart" | "force-reload" => "ReloadOrRestartUnit",
        "try-reload-or-restart" => "ReloadOrTryRestartUnit",
        "kill" => "KillUnit",
        _ => return Vec::new(),
    };
    units
        .iter()
        .map(|u| {
            let mut r = request(method, &unit_name(u));
            if method == "KillUnit" {
                r.signal = signal(option(words, "-s", "--signal")).or(Some(libc::SIGTERM));
                r.mode = Some(option(words, "--kill-whom", "--kill-whom").unwrap_or("all").to_string());
            }
            r
        })
        .collect()
}

/// systemctl's default suffix: `nginx` is `nginx.service`.
pub fn unit_name(u: &str) -> String {
    const TYPES: [&str; 11] = [
        ".service",
        ".socket",
        ".scope",
        ".slice",
        ".mount",
        ".automount",
        ".swap",
        ".timer",
        ".path",
        ".target",
        ".device",
    ];
    if TYPES.iter().any(|t| u.ends_with(t)) { u.to_string() } else { format!("{u}.service") }
}

fn docker(words: &[&str]) -> Vec<Request> {
    let with_value = ["-t", "--time", "--timeout", "-s", "--signal", "-H", "--host", "--context", "-c", "--config"];
    let mut ops = operands(words, &with_value);
    if ops.first() == Some(&"container") {
        ops.remove(0);
    }
    let Some((verb, names)) = ops.split_first() else { return Vec::new() };
    let forced = words.iter().any(|w| matches!(*w, "-f" | "--force" | "-fv" | "-vf"));
    let method = match *verb {
        "stop" => "stop",
        "kill" => "kill",
        "restart" => "restart",
        "rm" | "remove" if forced => "remove",
        _ => return Vec::new(),
    };
    let timeout = option(words, "-t", "--time").or_else(|| option(words, "--timeout", "--timeout"));
    names
        .iter()
        .map(|n| {
            let mut r = request(method, n);
            r.timeout_s = timeout.and_then(|t| t.parse().ok());
            if method == "kill" {
                r.signal = signal(option(words, "-s", "--signal")).or(Some(libc::SIGKILL));
            }
            r
        })
        .collect()
}

fn ctr(words: &[&str]) -> Vec<Request> {
    // `-a` is ctr's `--address` before the command and `task kill`'s `--all` after it.
    const GLOBAL: &[&str] = &["-n", "--namespace", "-a", "--address", "--timeout", "--connect-timeout"];
    let mut command = words.len();
    let mut skip = false;
    for (i, w) in words.iter().enumerate() {
        if skip {
            skip = false;
        } else if w.starts_with('-') {
            skip = GLOBAL.contains(w);
        } else {
            command = i;
            break;
        }
    }
    let (global, rest) = words.split_at(command);
    let mut ops = operands(global, GLOBAL);
    ops.extend(operands(rest, &["-s", "--signal", "--exec-id"]));
    match ops.as_slice() {
        [group, "kill", ids @ ..] if matches!(*group, "task" | "tasks" | "t") => ids
            .iter()
            .map(|id| {
                let mut r = request("Kill", id);
                r.signal = signal(option(words, "-s", "--signal")).or(Some(libc::SIGTERM));
                r
            })
            .collect(),
        [group, "delete" | "del" | "remove" | "rm", ids @ ..]
            if matches!(*group, "task" | "tasks" | "t") && words.iter().any(|w| matches!(*w, "-f" | "--force")) =>
        {
            ids.iter().map(|id| request("DeleteTask", id)).collect()
        }
        _ => Vec::new(),
    }
}

fn crictl(words: &[&str]) -> Vec<Request> {
    let ops = operands(words, &["-t", "--timeout", "-r", "--runtime-endpoint", "-i", "--image-endpoint"]);
    let timeout = option(words, "-t", "--timeout").and_then(|t| t.trim_end_matches('s').parse().ok());
    match ops.as_slice() {
        ["stop", ids @ ..] => ids
            .iter()
            .map(|id| {
                let mut r = request("StopContainer", id);
                r.timeout_s = timeout;
                r
            })
            .collect(),
        ["rm", ids @ ..] if words.iter().any(|w| matches!(*w, "-f" | "--force")) => {
            ids.iter().map(|id| request("RemoveContainer", id)).collect()
        }
        ["stopp", ids @ ..] => ids.iter().map(|id| request("StopPodSandbox", id)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(socket: Socket, line: &str) -> Vec<(String, String, Option<i32>, Option<i64>)> {
        let argv: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        requests(socket, &argv).into_iter().map(|r| (r.method, r.object, r.signal, r.timeout_s)).collect()
    }

    #[test]
    fn the_clients_people_type() {
        assert_eq!(
            of(Socket::SystemdPrivate, "systemctl restart nginx"),
            [("RestartUnit".into(), "nginx.service".into(), None, None)]
        );
        assert_eq!(
            of(Socket::SystemBus, "/usr/bin/systemctl kill -s KILL web.service"),
            [("KillUnit".into(), "web.service".into(), Some(9), None)]
        );
        assert_eq!(of(Socket::Docker, "docker stop -t 2 web"), [("stop".into(), "web".into(), None, Some(2))]);
        assert_eq!(of(Socket::Docker, "docker container kill web"), [("kill".into(), "web".into(), Some(9), None)]);
        assert_eq!(of(Socket::Docker, "docker rm -f web"), [("remove".into(), "web".into(), None, None)]);
        assert_eq!(
            of(Socket::Containerd, "ctr -n k8s.io task kill -s SIGKILL abc"),
            [("Kill".into(), "abc".into(), Some(9), None)]
        );
        // `-a`: the address before the command, `--all` (no value) after it.
        assert_eq!(
            of(Socket::Containerd, "ctr -a /run/c.sock task kill -a -s 9 abc"),
            [("Kill".into(), "abc".into(), Some(9), None)]
        );
        assert_eq!(
            of(Socket::Containerd, "crictl stop -t 5 abc"),
            [("StopContainer".into(), "abc".into(), None, Some(5))]
        );
    }

    #[test]
    fn what_stops_nothing_names_nothing() {
        for line in [
            "systemctl status nginx",
            "systemctl start nginx",
            "docker ps",
            "docker rm web",
            "docker inspect web",
            "ctr task ls",
            "crictl ps",
            "kubelet --config x",
        ] {
            let socket = if line.starts_with("systemctl") {
                Socket::SystemdPrivate
            } else if line.starts_with("docker") {
                Socket::Docker
            } else {
                Socket::Containerd
            };
            assert!(of(socket, line).is_empty(), "{line}");
        }
        // A stop verb to another manager's socket is not a request to this one.
        assert!(of(Socket::Docker, "systemctl stop nginx").is_empty());
    }
}
