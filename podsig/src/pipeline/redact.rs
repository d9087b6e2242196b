//! Secrets out of command lines before they leave podsig: every output, the history, and
//! whatever reads those (a cluster's log pipeline).
//!
//! The kernel captures argv as it is; masking happens here, in user space, once per record
//! (and once per storm: the last argv's result is kept), never in the kernel's hot path.
//! What is masked, the name kept visible so the report still says what was passed:
//!
//! - the value of a flag or variable whose name says password, passwd, pass, passphrase,
//!   secret, token, auth(orization), credential(s), api-key, access-key, private-key or
//!   cookie: `--password=***`, `--token ***`, `-Ddb.password=***`, `DB_PASSWORD=***`,
//!   `dbPassword=***` (names that point at a secret rather than hold one, such as
//!   `--password-file` or `--token-path`, are left alone);
//! - credentials in URLs: `https://***@host/…` (the whole user-info: a user name is often
//!   the token itself);
//! - header values: `Authorization: ***`, `Cookie: ***`, `X-Api-Key: ***`;
//! - the password options of tools that take it glued to a short flag or after one: mysql
//!   and mariadb's `-p***`, sshpass's `-p`, redis-cli's `-a`, curl's `-u user:***`;
//! - the same inside a shell string (`sh -c "mysql -psecret …"`), and what `--redact`
//!   patterns match.

use std::sync::LazyLock;

use regex::Regex;

use crate::event::Record;

/// What a masked value reads as.
pub const MASK: &str = "***";

/// Masks secrets in argv; one per watch.
#[derive(Default)]
pub struct Redactor {
    off: bool,
    extra: Vec<Regex>,
    /// The last argv masked and what it became: a storm repeats one sender's argv.
    last: Option<(Vec<String>, Vec<String>)>,
}

impl Redactor {
    /// The built-in rules plus `extra` patterns; `off` masks nothing (`--no-redact`).
    pub fn new(extra: Vec<Regex>, off: bool) -> Self {
        if off {
            tracing::warn!("--no-redact: command lines are printed and stored as they are, secrets included");
        }
        Self { off, extra, last: None }
    }

    /// The one place records are masked, before any output, metric or the history sees
    /// them: the sender's argv, the only field a process fills with its own strings
    /// beyond its name.
    pub fn record(&mut self, record: &mut Record) {
        match record {
            Record::Signal(s) => {
                if let Some(sender) = s.sender.as_mut() {
                    self.argv(&mut sender.argv);
                }
            }
            // A requester's argv, masked before it is kept and linked to any signal.
            Record::Request(r) => self.argv(&mut r.client.argv),
            _ => {}
        }
    }

    /// Masks `argv` in place.
    pub fn argv(&mut self, argv: &mut Vec<String>) {
        if self.off || argv.is_empty() {
            return;
        }
        if let Some((input, output)) = &self.last
            && input == argv
        {
            argv.clone_from(output);
            return;
        }
        let input = argv.clone();
        redact(argv, &self.extra);
        self.last = Some((input, argv.clone()));
    }
}

/// `--redact REGEX`, checked when the command line is read.
pub fn parse_pattern(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| format!("'{s}' is not a regular expression ({})", one_line(&e.to_string())))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The words of a flag or variable name: `--dbPassword` → db, password; `X_API_KEY` → x,
/// api, key.
fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase() || p.is_ascii_digit() || (p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()))
            });
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "passphrase",
    "pwd",
    "secret",
    "secrets",
    "token",
    "tokens",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "apikey",
    "cookie",
    "privatekey",
];
const GLUED_WORDS: &[&str] = &["password", "passwd", "passphrase", "secret", "token", "apikey", "credentials"];
const SECRET_PAIRS: &[(&str, &str)] = &[("api", "key"), ("access", "key"), ("private", "key")];
/// A name ending in one of these points at a secret (a file, a variable, an ID) or says
/// something about it: the value is not the secret.
const REFERENCE_WORDS: &[&str] = &[
    "file", "files", "path", "stdin", "fd", "env", "dir", "name", "id", "type", "method", "mode", "url", "uri", "ttl",
    "endpoint", "server", "host", "port", "user", "username",
];

/// Whether a flag or variable named `name` (dashes and all) holds a secret.
pub fn sensitive(name: &str) -> bool {
    let w = words(name);
    let Some(last) = w.last() else { return false };
    // `PWD` alone is the shell's working directory; `--no-auth` is a switch.
    if (w.len() == 1 && w[0] == "pwd") || w[0] == "no" || REFERENCE_WORDS.contains(&last.as_str()) {
        return false;
    }
    // Glued names (PGPASSWORD, authToken in lower case) end in the word.
    w.iter().any(|x| SECRET_WORDS.contains(&x.as_str()) || GLUED_WORDS.iter().any(|g| x.ends_with(g)))
        || w.windows(2).any(|p| SECRET_PAIRS.contains(&(p[0].as_str(), p[1].as_str())))
}

static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^-{0,2}[A-Za-z_][A-Za-z0-9_.-]*$").unwrap());
static FLAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^-{1,2}[A-Za-z][A-Za-z0-9_.-]*$").unwrap());
static URL_USERINFO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s'"]+@"#).unwrap());
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b((?:proxy-)?authorization|cookie|x-[a-z0-9-]*(?:token|key|auth|secret|password)[a-z0-9-]*)\s*:\s*[^"'\n]+"#,
    )
    .unwrap()
});
/// `name=value` inside a shell string: the value up to a space, quote or shell operator.
static EMBEDDED_ASSIGN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(^|[\s'"(;&|])(-{0,2}[A-Za-z_][A-Za-z0-9_.-]*)=("[^"]*"|'[^']*'|[^\s'";&|)]+)"#).unwrap()
});
/// `--flag value` inside a shell string.
static EMBEDDED_FLAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(^|[\s'"(;&|])(-{1,2}[A-Za-z][A-Za-z0-9_.-]*)(\s+)("[^"]*"|'[^']*'|[^\s'";&|)-][^\s'";&|)]*)"#)
        .unwrap()
});
/// mysql's `-pSECRET` inside a shell string.
static EMBEDDED_MYSQL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"((?:^|[\s;&|(])(?:\S*/)?(?:mysql|mariadb)[\w-]*\s(?:[^;&|\n]*?\s)?-p)[^\s'";&|)]+"#).unwrap()
});
/// curl's `-u user:SECRET` inside a shell string that runs curl.
static EMBEDDED_CURL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"((?:^|\s)(?:-u|--user|-U|--proxy-user)(?:\s+|=)?["']?[^\s:'"]*:)[^\s'";&|)]+"#).unwrap()
});
static CURL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(^|[\s/;&|(])curl\s").unwrap());

/// How a tool takes its password on a short option.
#[derive(Clone, Copy, PartialEq)]
enum Tool {
    /// mysql, mariadb and their siblings: `-pSECRET` (glued; a bare `-p` prompts).
    Mysql,
    /// sshpass: `-pSECRET` or `-p SECRET`.
    Sshpass,
    /// redis-cli: `-a SECRET`.
    RedisCli,
    /// curl: `-u user:SECRET`.
    Curl,
    Other,
}

fn tool(argv0: &str) -> Tool {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    match base {
        b if b.starts_with("mysql") || b.starts_with("mariadb") => Tool::Mysql,
        "sshpass" => Tool::Sshpass,
        "redis-cli" => Tool::RedisCli,
        "curl" => Tool::Curl,
        _ => Tool::Other,
    }
}

/// Masks `user:SECRET` to `user:***`.
fn user_colon_secret(v: &str) -> Option<String> {
    let (user, secret) = v.split_once(':')?;
    (!secret.trim().is_empty() && secret.trim() != MASK).then(|| format!("{user}:{MASK}"))
}

/// The built-in rules and `extra`, over one argv.
pub fn redact(argv: &mut [String], extra: &[Regex]) {
    let tool = argv.first().map_or(Tool::Other, |a| tool(a));
    let mut next_is_secret = false;
    let mut next_is_credentials = false;
    let len = argv.len();
    for i in 0..len {
        let a = &mut argv[i];
        if std::mem::take(&mut next_is_secret) && !a.is_empty() {
            *a = MASK.to_string();
            continue;
        }
        let mut by_tool = false;
        if std::mem::take(&mut next_is_credentials)
            && let Some(masked) = user_colon_secret(a)
        {
            *a = masked;
            by_tool = true;
        }
        let next_is_value = argv.get(i + 1).is_some_and(|n| !n.starts_with('-'));
        // `sh -c SCRIPT`, `bash -ec SCRIPT`, `python -c CODE`: a command line in one element,
        // masked by the embedded rules only.
        let script =
            i > 0 && argv[i - 1].starts_with('-') && !argv[i - 1].starts_with("--") && argv[i - 1].contains('c');
        let a = &mut argv[i];
        // The tools' own options first: mysql's `-psecret` is not a flag named "psecret".
        by_tool |= match (tool, a.as_str()) {
            (Tool::Mysql | Tool::Sshpass, s) if s.len() > 2 && s.starts_with("-p") && !s.starts_with("--") => {
                *a = format!("-p{MASK}");
                true
            }
            (Tool::Sshpass, "-p") | (Tool::RedisCli, "-a") => {
                next_is_secret = i + 1 < len;
                true
            }
            (Tool::Curl, "-u" | "--user" | "-U" | "--proxy-user") => {
                next_is_credentials = true;
                true
            }
            (Tool::Curl, s) => {
                let glued = ["--user=", "--proxy-user=", "-u", "-U"].iter().find_map(|p| Some((p, s.strip_prefix(p)?)));
                match glued.and_then(|(p, v)| Some((p, user_colon_secret(v)?))) {
                    Some((p, masked)) => {
                        *a = format!("{p}{masked}");
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if !by_tool && !script {
            if let Some((name, _)) = a.split_once('=')
                && NAME.is_match(name)
                && sensitive(name)
            {
                *a = format!("{name}={MASK}");
            } else if FLAG.is_match(a) && sensitive(a) {
                next_is_secret = next_is_value;
            }
        }
        embedded(a);
        for re in extra {
            mask_matches(a, re);
        }
    }
}

/// Rules that apply anywhere in an element: URLs and headers always; inside a shell string
/// (an element with spaces), assignments, flags and the tools' options too.
fn embedded(a: &mut String) {
    if a.contains("://") {
        replace(a, &URL_USERINFO, |c| format!("{}{MASK}@", &c[1]));
    }
    if a.contains(':') {
        replace(a, &HEADER, |c| format!("{}: {MASK}", &c[1]));
    }
    if !a.contains(char::is_whitespace) {
        return;
    }
    replace(a, &EMBEDDED_MYSQL, |c| format!("{}{MASK}", &c[1]));
    replace(a, &EMBEDDED_ASSIGN, |c| {
        if sensitive(&c[2]) { format!("{}{}={MASK}", &c[1], &c[2]) } else { c[0].to_string() }
    });
    replace(a, &EMBEDDED_FLAG, |c| {
        if sensitive(&c[2]) { format!("{}{}{}{MASK}", &c[1], &c[2], &c[3]) } else { c[0].to_string() }
    });
    if CURL.is_match(a) {
        replace(a, &EMBEDDED_CURL, |c| format!("{}{MASK}", &c[1]));
    }
}

fn replace(a: &mut String, re: &Regex, f: impl Fn(&regex::Captures) -> String) {
    if let std::borrow::Cow::Owned(s) = re.replace_all(a, |c: &regex::Captures| f(c)) {
        *a = s;
    }
}

/// A `--redact` pattern: its capture groups are masked, or the whole match without groups.
fn mask_matches(a: &mut String, re: &Regex) {
    if !re.is_match(a) {
        return;
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for c in re.captures_iter(a) {
        let mut groups: Vec<(usize, usize)> = if c.len() > 1 {
            c.iter().skip(1).flatten().map(|m| (m.start(), m.end())).collect()
        } else {
            c.get(0).map(|m| (m.start(), m.end())).into_iter().collect()
        };
        groups.sort_by_key(|&(s, e)| (s, std::cmp::Reverse(e)));
        for (s, e) in groups {
            // Nested groups: the outer one covers the inner.
            if spans.last().is_none_or(|&(_, end)| s >= end) && e > s {
                spans.push((s, e));
            }
        }
    }
    let mut out = String::with_capacity(a.len());
    let mut at = 0;
    for (s, e) in spans {
        out.push_str(&a[at..s]);
        out.push_str(MASK);
        at = e;
    }
    out.push_str(&a[at..]);
    *a = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(argv: &[&str]) -> Vec<String> {
        masked_with(argv, &[])
    }

    fn masked_with(argv: &[&str], extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let extra: Vec<Regex> = extra.iter().map(|p| parse_pattern(p).unwrap()).collect();
        redact(&mut v, &extra);
        v
    }

    #[test]
    fn flag_values_are_masked_and_names_kept() {
        assert_eq!(masked(&["app", "--password=hunter2", "--port=80"]), ["app", "--password=***", "--port=80"]);
        assert_eq!(masked(&["app", "--token", "abc", "--verbose"]), ["app", "--token", "***", "--verbose"]);
        assert_eq!(masked(&["app", "-api-key", "k1"]), ["app", "-api-key", "***"]);
        assert_eq!(
            masked(&["app", "--client-secret=s", "--auth", "u:p"]),
            ["app", "--client-secret=***", "--auth", "***"]
        );
        assert_eq!(
            masked(&["java", "-Ddb.password=pw", "-jar", "a.jar"]),
            ["java", "-Ddb.password=***", "-jar", "a.jar"]
        );
        assert_eq!(masked(&["app", "--dbPassword=x", "--apiKey=y"]), ["app", "--dbPassword=***", "--apiKey=***"]);
        assert_eq!(
            masked(&["env", "DB_PASSWORD=x", "MYSQL_PWD=y", "GITHUB_TOKEN=z", "PWD=/srv"]),
            ["env", "DB_PASSWORD=***", "MYSQL_PWD=***", "GITHUB_TOKEN=***", "PWD=/srv"]
        );
        assert_eq!(masked(&["aws", "AWS_SECRET_ACCESS_KEY=abc"]), ["aws", "AWS_SECRET_ACCESS_KEY=***"]);
        assert_eq!(masked(&["env", "PGPASSWORD=x", "--authtoken=y"]), ["env", "PGPASSWORD=***", "--authtoken=***"]);
        // A value with spaces, glued: all of it.
        assert_eq!(masked(&["app", "--passphrase=a b c"]), ["app", "--passphrase=***"]);
    }

    #[test]
    fn names_that_only_point_at_a_secret_are_left_alone() {
        for argv in [
            &["docker", "login", "--password-stdin", "-u", "bob"][..],
            &["app", "--password-file=/run/secrets/db"],
            &["app", "--token-path", "/var/run/token"],
            &["app", "--no-auth", "target"],
            &["git", "commit", "--author=Ann <a@x>", "--passes=3"],
            &["app", "--tokenizer=bert", "--passwordless"],
            &["kill", "-TERM", "42"],
            &["sh", "-c", "cd $PWD && kill -9 1"],
        ] {
            assert_eq!(masked(argv), argv, "{argv:?}");
        }
        // A flag's next element is its value only when it is not itself a flag.
        assert_eq!(masked(&["app", "--token", "--verbose"]), ["app", "--token", "--verbose"]);
    }

    #[test]
    fn url_credentials() {
        assert_eq!(
            masked(&["git", "clone", "https://user:ghp_tok@github.com/o/r"]),
            ["git", "clone", "https://***@github.com/o/r"]
        );
        assert_eq!(
            masked(&["redis-cli", "-u", "redis://:pw@cache:6379/0"]),
            ["redis-cli", "-u", "redis://***@cache:6379/0"]
        );
        assert_eq!(
            masked(&["app", "--db=postgres://app:s3cret@db/app?sslmode=require"]),
            ["app", "--db=postgres://***@db/app?sslmode=require"]
        );
        // An @ after the host is not user-info.
        assert_eq!(masked(&["curl", "https://h/p?mail=a@b.c"]), ["curl", "https://h/p?mail=a@b.c"]);
    }

    #[test]
    fn tools_with_short_password_options() {
        assert_eq!(
            masked(&["mysql", "-uroot", "-psecret", "-h", "db", "app"]),
            ["mysql", "-uroot", "-p***", "-h", "db", "app"]
        );
        assert_eq!(
            masked(&["/usr/bin/mysqldump", "-p", "app"]),
            ["/usr/bin/mysqldump", "-p", "app"],
            "bare -p prompts"
        );
        assert_eq!(masked(&["mariadb-dump", "-pX"]), ["mariadb-dump", "-p***"]);
        assert_eq!(masked(&["sshpass", "-p", "pw", "ssh", "h"]), ["sshpass", "-p", "***", "ssh", "h"]);
        assert_eq!(masked(&["redis-cli", "-a", "pw", "ping"]), ["redis-cli", "-a", "***", "ping"]);
        assert_eq!(masked(&["curl", "-u", "admin:pw", "https://h"]), ["curl", "-u", "admin:***", "https://h"]);
        assert_eq!(masked(&["curl", "-uadmin:pw", "--user=a:b"]), ["curl", "-uadmin:***", "--user=a:***"]);
        // Not mysql: -p is a port, a pid, a path.
        assert_eq!(masked(&["ssh", "-p2222", "h"]), ["ssh", "-p2222", "h"]);
        assert_eq!(masked(&["pkill", "-P", "1"]), ["pkill", "-P", "1"]);
    }

    #[test]
    fn headers() {
        assert_eq!(
            masked(&["curl", "-H", "Authorization: Bearer abc.def", "https://h"]),
            ["curl", "-H", "Authorization: ***", "https://h"]
        );
        assert_eq!(
            masked(&["curl", "-H", "X-Api-Key:k", "-H", "Accept: */*"]),
            ["curl", "-H", "X-Api-Key: ***", "-H", "Accept: */*"]
        );
    }

    #[test]
    fn inside_shell_strings() {
        let sh = |s: &str| masked(&["sh", "-c", s])[2].clone();
        assert_eq!(sh("mysql -uroot -psecret app < dump.sql"), "mysql -uroot -p*** app < dump.sql");
        assert_eq!(sh("PGPASSWORD=pw psql -h db; kill -9 $$"), "PGPASSWORD=*** psql -h db; kill -9 $$");
        assert_eq!(sh("app --token abc --password='a b' && kill 1"), "app --token *** --password=*** && kill 1");
        assert_eq!(sh("curl -u admin:pw https://h || kill -TERM 1"), "curl -u admin:*** https://h || kill -TERM 1");
        assert_eq!(
            sh("curl -H 'Authorization: Bearer x' https://u:p@h/"),
            "curl -H 'Authorization: ***' https://***@h/"
        );
        assert_eq!(sh("ssh -p 22 host uptime"), "ssh -p 22 host uptime");
        assert_eq!(masked(&["bash", "-ec", "TOKEN=t ./run"])[2], "TOKEN=*** ./run");
        // Not a script: a glued value with spaces is all value.
        assert_eq!(masked(&["env", "DB_PASSWORD=a b", "app"]), ["env", "DB_PASSWORD=***", "app"]);
    }

    #[test]
    fn extra_patterns_mask_their_groups_or_the_match() {
        assert_eq!(masked_with(&["app", "--dsn=db:4411/app"], &[r"--dsn=([^:]+)"]), ["app", "--dsn=***:4411/app"]);
        assert_eq!(masked_with(&["app", "customer-4411"], &[r"customer-\d+"]), ["app", "***"]);
        assert_eq!(masked_with(&["app", "a1 b2 c3"], &[r"\w(\d)"]), ["app", "a*** b*** c***"]);
        assert_eq!(masked_with(&["app", "k=v"], &[r"((k)=)"]), ["app", "***v"], "nested groups: the outer one");
        assert!(parse_pattern("a(").unwrap_err().contains("'a(' is not a regular expression"));
    }

    #[test]
    fn idempotent_and_cached() {
        let mut r = Redactor::new(vec![], false);
        let mut a = vec!["app".to_string(), "--password=x".to_string()];
        r.argv(&mut a);
        assert_eq!(a, ["app", "--password=***"]);
        let mut again = a.clone();
        r.argv(&mut again);
        assert_eq!(again, a);
        let mut b = vec!["app".to_string(), "--password=x".to_string()];
        r.argv(&mut b);
        assert_eq!(b, ["app", "--password=***"], "from the cache");
        let mut off = Redactor::new(vec![], true);
        let mut c = vec!["app".to_string(), "--password=x".to_string()];
        off.argv(&mut c);
        assert_eq!(c, ["app", "--password=x"]);
    }

    #[test]
    fn words_of_names() {
        assert_eq!(words("--dbPassword"), ["db", "password"]);
        assert_eq!(words("X_API_KEY"), ["x", "api", "key"]);
        assert_eq!(words("APIKey"), ["api", "key"]);
        assert_eq!(words("-Ddb.password"), ["ddb", "password"]);
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        fn element() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("--password".to_string()),
                Just("-p".to_string()),
                Just("-c".to_string()),
                Just("-u".to_string()),
                Just("https://a:b@h/".to_string()),
                Just("Authorization: Bearer x".to_string()),
                "[-a-zA-Z_=:/@ '\";.|&]{0,24}",
                any::<String>(),
            ]
        }

        fn tool() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("mysql".to_string()),
                Just("curl".to_string()),
                Just("sshpass".to_string()),
                Just("redis-cli".to_string()),
                Just("sh".to_string()),
                any::<String>(),
            ]
        }

        proptest! {
            #![proptest_config(crate::fuzz_config(2000))]

            #[test]
            fn any_argv_is_masked_without_panic_and_masking_twice_changes_nothing(
                argv0 in tool(),
                rest in proptest::collection::vec(element(), 0..8),
            ) {
                let mut argv = vec![argv0];
                argv.extend(rest);
                let len = argv.len();
                redact(&mut argv, &[]);
                prop_assert_eq!(argv.len(), len, "elements are masked, never added or removed");
                let once = argv.clone();
                redact(&mut argv, &[]);
                prop_assert_eq!(argv, once);
            }
        }
    }
}
