//! `pavilion top REGISTRY`: a Pavilion registry's blob transfers in
//! flight, refreshed like `top`: repository, blob, bytes so far of the
//! total, rate and ETA, fastest first. On a terminal the screen is redrawn;
//! otherwise (or with `--output json`, one document per refresh) each
//! refresh is printed after the last, like `top -b`.

use crate::commands::du::human;
use crate::exit::{CmdResult, Context, ExitStatus, UsageError};
use crate::output::{print_json, Output};
use crate::remote::{runtime, ConnArgs};
use clap::Args;
use pavilion_client::transfers::{Transfer, TransferList};
use std::io::IsTerminal;
use std::time::Duration;

/// Arguments of `pavilion top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// The registry host, e.g. 127.0.0.1:5000.
    pub registry: String,
    /// Seconds between refreshes (0.2 to 60).
    #[arg(short = 'd', long, value_name = "SECONDS", default_value = "1")]
    pub interval: f64,
    /// Stop after this many refreshes (default: until interrupted).
    #[arg(short = 'n', long, value_name = "N")]
    pub iterations: Option<u64>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Runs `pavilion top`.
pub fn run(args: TopArgs) -> CmdResult {
    let registry = args.registry.trim_end_matches('/');
    if registry.is_empty() || registry.contains('/') {
        return Err(UsageError(format!("{:?} is not a registry host", args.registry)).into());
    }
    if !(0.2..=60.0).contains(&args.interval) {
        return Err(UsageError(format!(
            "--interval {} is not between 0.2 and 60 seconds",
            args.interval
        ))
        .into());
    }
    let output = args.conn.output.format;
    let redraw = output == Output::Text && std::io::stdout().is_terminal();
    let client = args.conn.client()?;
    let rt = runtime()?;
    let mut shown = 0u64;
    loop {
        let list = rt
            .block_on(client.transfers(registry))
            .with_context(|| format!("listing the transfers of {registry}"))?;
        match output {
            Output::Json => print_json(&serde_json::to_value(&list).unwrap_or_default()),
            Output::Text => {
                if redraw {
                    // Home and clear: the next table replaces this one.
                    print!("\x1b[H\x1b[2J");
                }
                print!("{}", table(registry, &list));
            }
        }
        shown += 1;
        if args.iterations.is_some_and(|n| shown >= n) {
            return Ok(ExitStatus::Success);
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
}

/// Seconds as `1h02m`, `3m05s` or `12s`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// At most `n` characters of `s`, the end kept (a repository's last
/// components say most), control characters shown as `?`: the fields come
/// from a registry, and an escape sequence must not drive the terminal.
fn tail(s: &str, n: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let count = s.chars().count();
    if count <= n {
        return s.to_string();
    }
    let kept: String = s.chars().skip(count - (n - 1)).collect();
    format!("…{kept}")
}

/// The blob column: a short digest, else the upload session.
fn blob(t: &Transfer) -> String {
    match (&t.digest, &t.session) {
        (Some(d), _) => {
            let hex = d.split_once(':').map_or(d.as_str(), |(_, h)| h);
            format!("{}…", hex.chars().take(12).collect::<String>())
        }
        (None, Some(s)) => format!("upload {}", s.chars().take(8).collect::<String>()),
        (None, None) => "-".into(),
    }
}

/// One refresh: a summary line, then a row per transfer, fastest first.
fn table(registry: &str, list: &TransferList) -> String {
    use std::fmt::Write;
    let mut rows: Vec<&Transfer> = list.transfers.iter().collect();
    rows.sort_by(|a, b| {
        b.rate_bytes_per_second
            .total_cmp(&a.rate_bytes_per_second)
            .then(a.id.cmp(&b.id))
    });
    let rate = |dir: &str| -> f64 {
        rows.iter()
            .filter(|t| t.direction == dir)
            .map(|t| t.rate_bytes_per_second)
            .sum()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{registry}: {} transfers in flight{}, in {}/s, out {}/s",
        rows.len(),
        match list.untracked {
            0 => String::new(),
            n => format!(" (+{n} not listed)"),
        },
        human(rate("upload") as i64),
        human(rate("download") as i64),
    );
    let _ = writeln!(
        out,
        "{:<4} {:<32} {:<15} {:>21} {:>5} {:>11} {:>7} {:>7}  WHO",
        "DIR", "REPOSITORY", "BLOB", "BYTES", "%", "RATE", "ETA", "TIME"
    );
    for t in rows {
        let done = match t.total {
            Some(total) => format!("{}/{}", human(t.bytes as i64), human(total as i64)),
            None => human(t.bytes as i64),
        };
        let pct = t.total.filter(|n| *n > 0).map_or("-".to_string(), |n| {
            format!("{:.0}", (t.bytes as f64 * 100.0 / n as f64).min(100.0))
        });
        let _ = writeln!(
            out,
            "{:<4} {:<32} {:<15} {:>21} {:>5} {:>11} {:>7} {:>7}  {}",
            if t.direction == "upload" {
                "up"
            } else {
                "down"
            },
            tail(&t.repository, 32),
            tail(&blob(t), 15),
            done,
            pct,
            format!("{}/s", human(t.rate_bytes_per_second as i64)),
            t.eta_seconds.map_or("-".to_string(), duration),
            duration(t.elapsed_seconds),
            tail(&t.identity, 32),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_columns_read_like_top() {
        assert_eq!(duration(12.4), "12s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(tail("abc", 5), "abc");
        assert_eq!(tail("team/very/long/name", 6), "…/name");
        assert_eq!(tail("a\x1b[2Jb", 10), "a?[2Jb");
    }
}
