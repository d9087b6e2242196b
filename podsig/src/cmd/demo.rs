//! `podsig demo`: the whole tool in one command, on a throwaway process.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result};

use crate::{
    cli::DemoArgs,
    cmd::{
        require_root,
        watch::{self, WatchOptions},
    },
    sink::output,
    source::{BackendKind, WatchSpec},
};

pub async fn run(args: DemoArgs) -> Result<()> {
    require_root()?;
    let format = args.common.output.unwrap_or_else(output::default_format);
    let mut target = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .context("starting the demo target (`sleep 600`)")?;
    let pid = target.id();
    eprintln!("podsig: demo: started a throwaway target, `sleep 600` (pid {pid})");
    let spec = WatchSpec { pids: vec![pid], ring_bytes: args.common.ring_size, ..Default::default() };
    let mut opts = WatchOptions::new(BackendKind::Auto, spec);
    opts.print = Some(format);
    opts.node.name = crate::pipeline::node_filter::name(None);
    // The sender runs right after attach; this only bounds a demo gone wrong.
    opts.duration = Some(Duration::from_secs(10));
    let mut sender: Option<Child> = None;
    let result = watch::run(opts, || {
        // bash forks sh (the `; exit` stops bash from exec'ing it), and sh's builtin kill
        // sends: a short-lived chain, as in a real incident.
        let shell = if Path::new("/bin/bash").exists() { "bash" } else { "sh" };
        let script = r#"sh -c "kill -TERM $T"; exit $?"#;
        eprintln!("podsig: demo: running {shell} -c '{script}' with T={pid}");
        sender = Command::new(shell)
            .args(["-c", script])
            .env("T", pid.to_string())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| tracing::error!("could not start the demo sender: {e}"))
            .ok();
    })
    .await;
    let _ = target.kill();
    let _ = target.wait();
    if let Some(mut s) = sender {
        let _ = s.wait();
    }
    result?;
    eprintln!(
        "podsig: demo done. Watch your own process with:  sudo podsig watch --pid <PID>  \
         (add -o json for jq)"
    );
    Ok(())
}
