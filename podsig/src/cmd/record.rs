//! `podsig record`: the flight recorder, a node-wide watch into the history that `history`
//! and `why` read.

use anyhow::Result;

use crate::{
    cli::RecordArgs,
    cmd::{
        require_root,
        watch::{self, Shared, WatchOptions},
    },
    pipeline::node_filter,
    sink::history,
    source,
};

pub async fn run(args: RecordArgs, verbose: bool) -> Result<()> {
    require_root()?;
    source::prefetch(args.backend);
    let shared = Shared {
        backend: args.backend,
        ring_bytes: args.ring_size,
        verbose,
        node: &args.node,
        containerd: &args.containerd,
        redact: &args.redact,
        stop_window: args.stop_window,
        managed: true,
    };
    let mut opts = WatchOptions::from_flags(shared).await?;
    let gauges = history::Gauges { bytes: opts.node.metrics.as_ref().map(|m| m.history_bytes.clone()) };
    let limits = history::Limits { max_bytes: args.history_max, max_age: Some(args.history_age) };
    let access = history::Access { group: args.history_group };
    let writer = history::Writer::open(&args.history, limits, gauges, access)?;
    eprintln!("podsig: recording to {} (at most {} MiB)", args.history.display(), args.history_max >> 20);
    opts.spec.all = true;
    opts.spec.signals = node_filter::signals(&args.signals, args.node.any_signal);
    opts.print = args.output;
    opts.node.filter.namespace = args.pod_namespace;
    opts.node.filter.pod = args.pod;
    opts.node.filter.container_name = args.container_name;
    opts.node.history = Some(writer);
    watch::run(opts, || {}).await?;
    Ok(())
}
