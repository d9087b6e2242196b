//! What an interpreter or the dynamic loader was told to run, read from its argv.
//!
//! `python3 /tmp/x.py` runs /usr/bin/python3.11 as far as the kernel's executable goes, but
//! what the person typed, and what a dropper drops, is /tmp/x.py; `ld-linux-x86-64.so.2
//! /tmp/x` runs /tmp/x in a process whose executable is the loader. The interpreter's own
//! option grammar decides which argument is that file: `python3 -W ignore x.py`,
//! `python3 -m mod` (a module, not a file), `sh -c CODE` (inline code), `sh -e x` (a file).
//! An option this parser does not know could take an argument, so it says it cannot tell
//! rather than take the next word for a file.
//!
//! Pure: no /proc, no file system. `findings` resolves and judges the file.

/// A program that runs another file named in its argv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    Python,
    Perl,
    Ruby,
    Node,
    Php,
    Lua,
    Tcl,
    /// sh, bash, dash, zsh, ksh, mksh, ash, busybox's shell applets.
    Shell,
    /// The dynamic loader run as a program (`ld-linux-x86-64.so.2 PROGRAM`).
    Loader,
}

impl Runner {
    /// The runner an executable named `exe_name` (its file name) is, given its argv
    /// (busybox is every applet, and says which by argv[0], or argv[1] after its own name).
    pub fn of(exe_name: &str, argv: &[String]) -> Option<Runner> {
        let n = exe_name;
        if n.starts_with("busybox") {
            let applet = busybox_applet(argv).unwrap_or_default();
            return matches!(applet, "sh" | "ash" | "hush" | "bash").then_some(Runner::Shell);
        }
        let versioned = |stem: &str| {
            n.strip_prefix(stem).is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-'))
        };
        Some(match n {
            _ if versioned("python") || versioned("pypy") => Runner::Python,
            _ if versioned("perl") => Runner::Perl,
            _ if versioned("ruby") => Runner::Ruby,
            "node" | "nodejs" => Runner::Node,
            _ if versioned("php") => Runner::Php,
            _ if versioned("lua") || versioned("luajit") => Runner::Lua,
            _ if versioned("tclsh") || versioned("wish") => Runner::Tcl,
            "sh" | "bash" | "rbash" | "dash" | "zsh" | "ksh" | "ksh93" | "mksh" | "ash" | "yash" | "posh" => {
                Runner::Shell
            }
            _ if is_loader(n) => Runner::Loader,
            _ => return None,
        })
    }

    /// What the runner runs, in words: "script" or "program".
    pub fn runs(self) -> &'static str {
        match self {
            Runner::Loader => "program",
            _ => "script",
        }
    }
}

/// glibc's `ld-linux-x86-64.so.2`, `ld-linux-aarch64.so.1`, `ld64.so.2`, `ld.so`, musl's
/// `ld-musl-x86_64.so.1`.
fn is_loader(n: &str) -> bool {
    (n.starts_with("ld-") || n.starts_with("ld64.") || n.starts_with("ld.")) && n.contains(".so")
}

/// The applet a busybox process runs: argv[0]'s name, or argv[1] after busybox's own.
fn busybox_applet(argv: &[String]) -> Option<&str> {
    let first = base(argv.first()?);
    if first.starts_with("busybox") { argv.get(1).map(|a| base(a)) } else { Some(first) }
}

/// The file name of a path.
fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// What the runner was told to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ran {
    /// A file, as argv names it: absolute, or relative to the process's working directory.
    File(String),
    /// Code given on the command line (`-c`, `-e`, `-r`, `--eval`): no file to judge.
    Inline(&'static str),
    /// A module found on the interpreter's own search path (`python3 -m mod`).
    Module(String),
    /// Read from standard input (no operand, `-`, `sh -s`), or an interactive session.
    Stdin,
    /// A name looked up on a search path podsig cannot see (`perl -S x`; a loader's
    /// program without a `/`, looked up like a library, not in the working directory).
    Searched(String),
    /// An option this parser does not know (it might take an argument): it cannot tell.
    Unknown(String),
    /// argv was longer than the kernel keeps, and its cut middle is where the file was.
    CutShort,
}

impl Ran {
    /// In words, for a finding's detail.
    pub fn words(&self, runner: Runner) -> String {
        match self {
            Ran::File(f) => format!("{} {f}", runner.runs()),
            Ran::Inline(opt) => format!("inline code given with {opt}, no {} file", runner.runs()),
            Ran::Module(m) => format!("module {m} from its own search path (-m), not a file named in argv"),
            Ran::Stdin => "code read from standard input, no file named in argv".into(),
            Ran::Searched(n) => format!("{n}, looked up on a search path podsig cannot see"),
            Ran::Unknown(opt) => format!("a {} podsig cannot tell: it does not know the option {opt}", runner.runs()),
            Ran::CutShort => format!("a {} named in the part of a long argv the kernel did not keep", runner.runs()),
        }
    }
}

/// What `argv` (argv[0] included) tells `runner` to run.
pub fn what_ran(runner: Runner, argv: &[String]) -> Ran {
    // busybox run by its own name: `busybox sh x` is `sh x`.
    let own_name = argv.first().is_some_and(|z| base(z).starts_with("busybox"));
    let skip = if runner == Runner::Shell && own_name { 2 } else { 1 };
    let args: Vec<&str> = argv.iter().skip(skip).map(String::as_str).collect();
    let args = &args[..];
    match runner {
        Runner::Python => python(args),
        Runner::Perl => perl(args),
        Runner::Ruby => ruby(args),
        Runner::Node => node(args),
        Runner::Php => php(args),
        Runner::Lua => lua(args),
        Runner::Tcl => tcl(args),
        Runner::Shell => shell(args),
        Runner::Loader => loader(args),
    }
}

/// The operand at `i`, or standard input when there is none (or it is `-`).
fn operand(args: &[&str], i: usize) -> Ran {
    match args.get(i) {
        None | Some(&"-") => Ran::Stdin,
        Some(f) => Ran::File((*f).to_string()),
    }
}

fn python(args: &[&str]) -> Ran {
    let mut i = 0;
    while let Some(&a) = args.get(i) {
        match a {
            "-" => return Ran::Stdin,
            "--" => return operand(args, i + 1),
            "--check-hash-based-pycs" => i += 2,
            "--help" | "--version" | "--help-env" | "--help-xoptions" | "--help-all" => return Ran::Stdin,
            _ if a.starts_with("--") => return Ran::Unknown(a.into()),
            _ if a.starts_with('-') => {
                let flags = &a[1..];
                for (at, c) in flags.char_indices() {
                    let rest = &flags[at + c.len_utf8()..];
                    match c {
                        'b' | 'B' | 'd' | 'E' | 'h' | 'i' | 'I' | 'O' | 'P' | 'q' | 'R' | 's' | 'S' | 'u' | 'v'
                        | 'V' | 'x' | '?' => {}
                        'c' => return Ran::Inline("-c"),
                        'm' => {
                            let m = if rest.is_empty() { args.get(i + 1).copied().unwrap_or("") } else { rest };
                            return Ran::Module(m.into());
                        }
                        // -W and -X take the rest of the word, or the next one.
                        'W' | 'X' => {
                            if rest.is_empty() {
                                i += 1;
                            }
                            break;
                        }
                        _ => return Ran::Unknown(format!("-{c}")),
                    }
                }
                i += 1;
            }
            _ => return Ran::File(a.into()),
        }
    }
    Ran::Stdin
}

fn shell(args: &[&str]) -> Ran {
    let (mut inline, mut stdin) = (false, false);
    let mut i = 0;
    while let Some(&a) = args.get(i) {
        match a {
            "--" | "-" => {
                i += 1;
                break;
            }
            // bash's long options; only these two take an argument.
            "--rcfile" | "--init-file" => i += 2,
            "--norc" | "--noprofile" | "--login" | "--posix" | "--restricted" | "--verbose" | "--noediting"
            | "--debugger" | "--dump-strings" | "--dump-po-strings" | "--pretty-print" | "--help" | "--version"
            | "--wordexp" => i += 1,
            _ if a.starts_with("--") => return Ran::Unknown(a.into()),
            _ if a.len() > 1 && (a.starts_with('-') || a.starts_with('+')) => {
                // Every single-letter shell option is a flag, but -o/+o NAME and bash's
                // -O/+O NAME, whose name is the next word.
                let mut takes = 0;
                for c in a[1..].chars() {
                    match c {
                        'c' => inline = true,
                        's' => stdin = true,
                        'o' | 'O' => takes += 1,
                        _ if c.is_ascii_alphabetic() => {}
                        _ => return Ran::Unknown(a.into()),
                    }
                }
                i += 1 + takes;
            }
            _ => break,
        }
    }
    if inline {
        Ran::Inline("-c")
    } else if stdin {
        Ran::Stdin
    } else {
        operand(args, i)
    }
}

fn perl(args: &[&str]) -> Ran {
    let (mut inline, mut search) = (false, false);
    let mut i = 0;
    while let Some(&a) = args.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        i += 1;
        let flags = &a[1..];
        let mut chars = flags.char_indices();
        while let Some((at, c)) = chars.next() {
            let rest = &flags[at + c.len_utf8()..];
            match c {
                'a' | 'c' | 'n' | 'p' | 's' | 't' | 'T' | 'u' | 'U' | 'v' | 'w' | 'W' | 'X' | 'h' => {}
                'S' => search = true,
                // -e CODE, -M/-m MODULE, -I DIR: the rest of the word, or the next word.
                'e' | 'E' | 'M' | 'm' | 'I' => {
                    inline |= matches!(c, 'e' | 'E');
                    if rest.is_empty() {
                        i += 1;
                    }
                    break;
                }
                // -l[octal], -0[octal] or -0x[hex]: an optional number in the same word
                // (`-le CODE` is -l, then -e).
                'l' | '0' => {
                    let hex = c == '0' && rest.starts_with(['x', 'X']);
                    let digits = if hex {
                        1 + rest[1..].bytes().take_while(u8::is_ascii_hexdigit).count()
                    } else {
                        rest.bytes().take_while(|b| (b'0'..=b'7').contains(b)).count()
                    };
                    for _ in 0..digits {
                        chars.next();
                    }
                }
                // These take the rest of the word, if any, and never the next one.
                'x' | 'i' | 'd' | 'D' | 'C' | 'F' | 'V' => break,
                _ => return Ran::Unknown(format!("-{c}")),
            }
        }
    }
    if inline {
        return Ran::Inline("-e");
    }
    match operand(args, i) {
        Ran::File(f) if search && !f.contains('/') => Ran::Searched(f),
        r => r,
    }
}

fn ruby(args: &[&str]) -> Ran {
    let mut inline = false;
    let mut i = 0;
    while let Some(&a) = args.get(i) {
        match a {
            "--" => {
                i += 1;
                break;
            }
            "-" => break,
            // Ruby's long options take their value after `=`.
            _ if a.starts_with("--") => i += 1,
            _ if a.starts_with('-') => {
                i += 1;
                let flags = &a[1..];
                for (at, c) in flags.char_indices() {
                    let rest = &flags[at + c.len_utf8()..];
                    match c {
                        'a' | 'c' | 'd' | 'l' | 'n' | 'p' | 's' | 'v' | 'w' | 'y' | 'h' | 'U' => {}
                        // -C DIR changes directory first: a relative script is then not
                        // relative to the working directory /proc shows.
                        'C' => return Ran::Unknown("-C".into()),
                        'S' => return Ran::Unknown("-S".into()),
                        'e' | 'r' | 'I' | 'E' => {
                            inline |= c == 'e';
                            if rest.is_empty() {
                                i += 1;
                            }
                            break;
                        }
                        'W' | 'K' | 'T' | 'F' | '0' | 'x' | 'i' => break,
                        _ => return Ran::Unknown(format!("-{c}")),
                    }
                }
            }
            _ => break,
        }
    }
    if inline { Ran::Inline("-e") } else { operand(args, i) }
}

fn node(args: &[&str]) -> Ran {
    let mut i = 0;
    while let Some(&a) = args.get(i) {
        let name = a.split('=').next().unwrap_or(a);
        let valued = a.contains('=');
        match name {
            "--" => return operand(args, i + 1),
            "-" => return Ran::Stdin,
            "-e" | "--eval" => return Ran::Inline("--eval"),
            "-p" | "--print" => return Ran::Inline("--print"),
            "-i" | "--interactive" | "-v" | "--version" | "-h" | "--help" => return Ran::Stdin,
            // `-c` checks the script's syntax: it still names the file.
            "-c" | "--check" => i += 1,
            "-r"
            | "--require"
            | "--import"
            | "--loader"
            | "--experimental-loader"
            | "-C"
            | "--conditions"
            | "--input-type"
            | "--env-file"
            | "--title"
            | "--inspect-port"
            | "--stack-size" => i += if valued { 1 } else { 2 },
            // Node's other long options are flags, or carry their value after `=`.
            _ if a.starts_with("--") => i += 1,
            _ if a.starts_with('-') => return Ran::Unknown(a.into()),
            _ => return Ran::File(a.into()),
        }
    }
    Ran::Stdin
}

fn php(args: &[&str]) -> Ran {
    let mut i = 0;
    while let Some(&a) = args.get(i) {
        match a {
            "--" => return operand(args, i + 1),
            "-f" | "--file" => return operand(args, i + 1),
            "-r" | "--run" | "-B" | "--process-begin" | "-R" | "--process-code" | "-E" | "--process-end" => {
                return Ran::Inline("-r");
            }
            "-a" | "--interactive" | "-h" | "--help" | "-i" | "--info" | "-m" | "--modules" | "-v" | "--version"
            | "-S" | "--server" => return Ran::Stdin,
            "-c" | "--php-ini" | "-d" | "--define" | "-z" | "--zend-extension" | "-t" | "--docroot" => i += 2,
            "-C" | "--no-chdir" | "-e" | "--profile-info" | "-H" | "--hide-args" | "-l" | "--syntax-check" | "-n"
            | "--no-php-ini" | "-q" | "--no-header" | "-s" | "--syntax-highlight" | "-w" | "--strip" => i += 1,
            _ if a.starts_with('-') && a.len() > 1 => return Ran::Unknown(a.into()),
            _ => return operand(args, i),
        }
    }
    Ran::Stdin
}

fn lua(args: &[&str]) -> Ran {
    let mut i = 0;
    // `lua -e CODE script` runs both: the script is the file.
    while let Some(&a) = args.get(i) {
        match a {
            "--" => return operand(args, i + 1),
            "-" => return Ran::Stdin,
            "-e" | "-l" => i += 2,
            "-i" | "-v" | "-E" | "-W" => i += 1,
            _ if (a.starts_with("-e") || a.starts_with("-l")) && a.len() > 2 => i += 1,
            _ if a.starts_with('-') => return Ran::Unknown(a.into()),
            _ => return Ran::File(a.into()),
        }
    }
    if args.iter().any(|a| a.starts_with("-e")) { Ran::Inline("-e") } else { Ran::Stdin }
}

fn tcl(args: &[&str]) -> Ran {
    match args {
        ["-encoding", _, rest @ ..] => operand(rest, 0),
        [a, ..] if a.starts_with('-') && *a != "-" => Ran::Unknown((*a).into()),
        _ => operand(args, 0),
    }
}

fn loader(args: &[&str]) -> Ran {
    let mut i = 0;
    while let Some(&a) = args.get(i) {
        match a {
            "--" => {
                i += 1;
                break;
            }
            "--list" | "--verify" | "--inhibit-cache" | "--list-tunables" | "--list-diagnostics" => i += 1,
            "--help" | "--version" => return Ran::Stdin,
            "--library-path"
            | "--inhibit-rpath"
            | "--audit"
            | "--preload"
            | "--argv0"
            | "--glibc-hwcaps-prepend"
            | "--glibc-hwcaps-mask" => i += 2,
            _ if a.starts_with("--") => return Ran::Unknown(a.into()),
            _ => break,
        }
    }
    match args.get(i) {
        None => Ran::Stdin,
        // Without a slash the loader looks the name up like a library's, never in the
        // working directory.
        Some(p) if !p.contains('/') => Ran::Searched((*p).to_string()),
        Some(p) => Ran::File((*p).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(exe: &str, argv: &str) -> Option<Ran> {
        let argv: Vec<String> = argv.split(' ').map(String::from).collect();
        Runner::of(exe, &argv).map(|r| what_ran(r, &argv))
    }

    fn file(f: &str) -> Option<Ran> {
        Some(Ran::File(f.into()))
    }

    #[test]
    fn runners_by_executable_name() {
        let of = |exe, argv0: &str| Runner::of(exe, &[argv0.to_string()]);
        assert_eq!(of("python3.11", "python3"), Some(Runner::Python));
        assert_eq!(of("perl5.36.0", "perl"), Some(Runner::Perl));
        assert_eq!(of("dash", "sh"), Some(Runner::Shell));
        assert_eq!(of("ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"), Some(Runner::Loader));
        assert_eq!(of("ld-musl-x86_64.so.1", "ld"), Some(Runner::Loader));
        assert_eq!(of("busybox", "sh"), Some(Runner::Shell));
        assert_eq!(of("busybox", "sleep"), None);
        assert_eq!(Runner::of("busybox", &["busybox".into(), "ash".into()]), Some(Runner::Shell));
        // Names that only start like an interpreter's are other programs.
        assert_eq!(of("python3-config", "python3-config"), None);
        assert_eq!(of("perlbug", "perlbug"), None);
        assert_eq!(of("shred", "shred"), None);
        assert_eq!(of("ldconfig", "ldconfig"), None);
    }

    #[test]
    fn python_options() {
        assert_eq!(ran("python3.11", "python3 /tmp/x.py a b"), file("/tmp/x.py"));
        assert_eq!(ran("python3.11", "python3 -u x.py"), file("x.py"));
        assert_eq!(ran("python3.11", "python3 -uB -W ignore -X dev x.py"), file("x.py"));
        assert_eq!(ran("python3.11", "python3 -Wignore x.py"), file("x.py"));
        assert_eq!(ran("python3.11", "python3 -m http.server"), Some(Ran::Module("http.server".into())));
        assert_eq!(ran("python3.11", "python3 -mhttp.server"), Some(Ran::Module("http.server".into())));
        assert_eq!(ran("python3.11", "python3 -c import-os /tmp/x.py"), Some(Ran::Inline("-c")));
        assert_eq!(ran("python3.11", "python3 -uc pass"), Some(Ran::Inline("-c")));
        assert_eq!(ran("python3.11", "python3"), Some(Ran::Stdin));
        assert_eq!(ran("python3.11", "python3 - x"), Some(Ran::Stdin));
        assert_eq!(ran("python3.11", "python3 -- -x.py"), file("-x.py"));
        assert_eq!(ran("python3.11", "python3 -Z x.py"), Some(Ran::Unknown("-Z".into())));
    }

    #[test]
    fn shell_options() {
        assert_eq!(ran("bash", "bash /dev/shm/x"), file("/dev/shm/x"));
        assert_eq!(ran("dash", "sh -e script arg"), file("script"));
        assert_eq!(ran("bash", "bash -eo pipefail ./x.sh"), file("./x.sh"));
        assert_eq!(ran("bash", "bash +o errexit -O extglob --norc x.sh"), file("x.sh"));
        assert_eq!(ran("bash", "bash -c kill-$T x.sh"), Some(Ran::Inline("-c")));
        assert_eq!(ran("bash", "bash -ec kill"), Some(Ran::Inline("-c")));
        assert_eq!(ran("bash", "bash -s arg"), Some(Ran::Stdin));
        assert_eq!(ran("bash", "bash"), Some(Ran::Stdin));
        assert_eq!(ran("bash", "bash -- -x"), file("-x"));
        assert_eq!(ran("bash", "bash --rcfile rc x.sh"), file("x.sh"));
        // A shebang script run directly: the kernel puts the interpreter's path first.
        assert_eq!(ran("dash", "/bin/sh /tmp/x.sh arg"), file("/tmp/x.sh"));
        assert_eq!(ran("busybox", "sh /tmp/x"), file("/tmp/x"));
        assert_eq!(ran("busybox", "busybox sh /tmp/x"), file("/tmp/x"));
        assert_eq!(ran("busybox", "busybox sh -c kill"), Some(Ran::Inline("-c")));
    }

    #[test]
    fn perl_options() {
        assert_eq!(ran("perl", "perl /tmp/x.pl"), file("/tmp/x.pl"));
        assert_eq!(ran("perl", "perl -w -Mstrict -I lib x.pl"), file("x.pl"));
        assert_eq!(ran("perl", "perl -l012 -w x.pl"), file("x.pl"));
        assert_eq!(ran("perl", "perl -lne print x.txt"), Some(Ran::Inline("-e")));
        assert_eq!(ran("perl", "perl -le print"), Some(Ran::Inline("-e")));
        assert_eq!(ran("perl", "perl -0777 -n x.pl"), file("x.pl"));
        assert_eq!(ran("perl", "perl -0x1Fne print"), Some(Ran::Inline("-e")));
        assert_eq!(ran("perl", "perl -e kill(15,$T)"), Some(Ran::Inline("-e")));
        assert_eq!(ran("perl", "perl -S x.pl"), Some(Ran::Searched("x.pl".into())));
        assert_eq!(ran("perl", "perl"), Some(Ran::Stdin));
    }

    #[test]
    fn other_interpreters() {
        assert_eq!(ran("ruby", "ruby -w -r json x.rb"), file("x.rb"));
        assert_eq!(ran("ruby", "ruby -e puts"), Some(Ran::Inline("-e")));
        assert_eq!(ran("ruby", "ruby -C /srv x.rb"), Some(Ran::Unknown("-C".into())));
        assert_eq!(ran("node", "node --max-old-space-size=64 -r dotenv/config /tmp/x.js"), file("/tmp/x.js"));
        assert_eq!(ran("node", "node -e process.kill(1)"), Some(Ran::Inline("--eval")));
        assert_eq!(ran("php8.2", "php -d x=1 -f /tmp/x.php"), file("/tmp/x.php"));
        assert_eq!(ran("php8.2", "php -r phpinfo();"), Some(Ran::Inline("-r")));
        assert_eq!(ran("lua5.4", "lua -e x=1 /tmp/x.lua"), file("/tmp/x.lua"));
        assert_eq!(ran("tclsh8.6", "tclsh /tmp/x.tcl"), file("/tmp/x.tcl"));
    }

    #[test]
    fn the_dynamic_loader() {
        let ld = "ld-linux-x86-64.so.2";
        assert_eq!(ran(ld, "/lib64/ld-linux-x86-64.so.2 /tmp/x a"), file("/tmp/x"));
        assert_eq!(ran(ld, "ld.so --library-path /tmp/lib --preload x.so ./x"), file("./x"));
        assert_eq!(ran(ld, "ld.so --argv0 sshd /dev/shm/x"), file("/dev/shm/x"));
        assert_eq!(ran(ld, "ld.so x"), Some(Ran::Searched("x".into())));
        assert_eq!(ran(ld, "ld.so --frobnicate x"), Some(Ran::Unknown("--frobnicate".into())));
    }
}
