//! Errors as podsig prints them: one line.

/// An error and its causes on one line, each said once: many errors (tonic's, io's) already
/// print their source, and walking the chain would print it again.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let m = cause.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if m.is_empty() || parts.iter().any(|p| p.contains(&m)) {
            continue;
        }
        parts.push(m);
    }
    parts.join(": ")
}
