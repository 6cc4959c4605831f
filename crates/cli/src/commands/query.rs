//! `pavilion query REGISTRY QUERY`: a continuous query's current result
//! on a Pavilion registry, once: a table of the `RETURN` columns, or one
//! JSON row per line with `--output json`.

use crate::exit::{CmdResult, Context, ExitStatus, UsageError};
use crate::output::Output;
use crate::remote::{runtime, ConnArgs};
use clap::Args;
use pavilion_client::queries::{self, Row};

/// Arguments of `query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The registry host, e.g. 127.0.0.1:5000.
    pub registry: String,
    /// The query (Cypher), e.g. "MATCH (t:Tag)-[:TAGS]->(m:Manifest) RETURN t.repository AS repository, t.name AS tag, m.digest AS digest".
    pub query: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Runs `query`.
pub fn run(args: QueryArgs) -> CmdResult {
    let registry = registry_host(&args.registry)?;
    let query = query_text(&args.query)?;
    let client = args.conn.client()?;
    let result = runtime()?.block_on(async {
        queries::current(&client, registry, &query)
            .await
            .with_context(|| format!("querying {registry}"))
    })?;
    match args.conn.output.format {
        Output::Json => {
            for row in &result.rows {
                println!("{}", row.to_json());
            }
        }
        Output::Text if result.rows.is_empty() => {
            eprintln!("no rows (as of feed sequence {})", result.seq)
        }
        Output::Text => print!("{}", table(&result.rows)),
    }
    Ok(ExitStatus::Success)
}

/// The registry host of a command line, as `events tail` checks it.
pub fn registry_host(arg: &str) -> CmdResult<&str> {
    let registry = arg.trim_end_matches('/');
    if registry.is_empty() || registry.contains('/') {
        return Err(UsageError(format!("{arg:?} is not a registry host")).into());
    }
    Ok(registry)
}

/// The query, refused when empty (the registry would say so less clearly).
pub fn query_text(q: &str) -> CmdResult<String> {
    if q.trim().is_empty() {
        return Err(UsageError("the query is empty".into()).into());
    }
    Ok(q.to_string())
}

/// The rows as a table: one column per field name, in the order the
/// names first appear, a header of the names, cells padded to the widest.
pub fn table(rows: &[Row]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        for n in r.names() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let mut lines: Vec<Vec<String>> = vec![names.iter().map(|n| printable(n)).collect()];
    for r in rows {
        lines.push(names.iter().map(|n| cell(r.get(n))).collect());
    }
    let mut widths = vec![0usize; names.len()];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, (c, w)) in l.iter().zip(&widths).enumerate() {
            if i + 1 == l.len() {
                line.push_str(c);
            } else {
                let pad = w - c.chars().count();
                line.push_str(c);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A value as a cell: strings as they are, nothing as `-`, anything else
/// as JSON.
fn cell(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "-".to_string(),
        Some(serde_json::Value::String(s)) => printable(s),
        Some(other) => printable(&other.to_string()),
    }
}

/// Control characters shown as `?`: rows hold what pushers chose
/// (repository names, annotations) and must not drive the terminal.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_of_the_columns_in_their_order() {
        let rows = vec![
            Row(vec![
                ("repository".into(), json!("team/a")),
                ("tag".into(), json!("v1")),
                ("size".into(), json!(12)),
            ]),
            Row(vec![
                ("repository".into(), json!("team/longer\u{1b}[31m")),
                ("tag".into(), json!(null)),
                ("size".into(), json!(3)),
            ]),
        ];
        assert_eq!(
            table(&rows),
            "repository        tag  size\n\
             team/a            v1   12\n\
             team/longer?[31m  -    3\n"
        );
    }
}
