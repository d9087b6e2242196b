//! `podsig history`: the recorder's matching events, printed as `watch` printed them.

use anyhow::Result;

use crate::{
    cli::HistoryArgs,
    event::Record,
    sink::{
        history,
        output::{self, Format, Output},
    },
};

pub fn run(args: HistoryArgs, verbose: bool) -> Result<()> {
    let conn = history::open_ro(&args.history)?;
    let q = history::Query {
        pod: args.pod,
        namespace: args.pod_namespace,
        container: args.container,
        container_name: args.container_name,
        unit: args.unit,
        pid: args.pid,
        signals: args.signals,
        with_exits: false,
        since: args.since,
        last: args.last,
    };
    let rows = history::query(&conn, &q)?;
    // A history kept by a podsig that did not mask (older, or --no-redact) is
    // masked on the way out all the same.
    let mut redactor = args.redact.redactor();
    let format = args.output.unwrap_or_else(output::default_format);
    let mut out = Output::stdout(format, verbose);
    // A row this podsig cannot read (written by a newer one, or damaged) is left out and
    // counted, not allowed to end the listing.
    let mut unreadable: Option<(usize, serde_json::Error)> = None;
    let mut write = || -> std::io::Result<()> {
        for json in &rows {
            let mut record: Record = match serde_json::from_str(json) {
                Ok(r) => r,
                Err(e) => {
                    unreadable = Some(unreadable.take().map_or((1, e), |(n, first)| (n + 1, first)));
                    continue;
                }
            };
            let stored = record.clone();
            redactor.record(&mut record);
            match format {
                // The stored line is what `watch -o json` printed: passed through
                // unless masking changed it.
                Format::Json if record == stored => out.write_json_line(json)?,
                _ => out.write(&record)?,
            }
        }
        out.flush()
    };
    output::written(write(), "writing the history to stdout")?;
    if let Some((n, first)) = unreadable {
        eprintln!(
            "podsig: {n} stored rows could not be read and were left out (the first: {first}); a newer podsig may read them"
        );
    }
    if rows.is_empty() {
        eprintln!("podsig: no matching events in {}", args.history.display());
    }
    Ok(())
}
