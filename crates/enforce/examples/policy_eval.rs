//! Time of one admission decision in process: the policy directory loaded
//! as `pavilion serve --policy` loads it (a [`PolicySet`]), then the same
//! input document decided N times, as the server decides each review
//! (input converted for regorus, `deny` and `warn` queried).
//!
//! ```text
//! cargo run --release -p pavilion-enforce --example policy_eval -- POLICY_DIR INPUT.json [N]
//! ```
//!
//! Prints the decision (`decision {"deny":[...],"warn":[...]}`), then one
//! `key=value` line (times in microseconds) for scripts such as bench/policy.

use pavilion_enforce::PolicySet;
use pavilion_policy::Point;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: policy_eval POLICY_DIR INPUT.json [N (default 2000)]");
        return ExitCode::from(2);
    }
    let dir = PathBuf::from(&args[0]);
    let n: usize = match args.get(2).map(|s| s.parse()) {
        None => 2000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("N must be a positive integer");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(&args[1]) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", args[1]);
            return ExitCode::FAILURE;
        }
    };
    let input: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: not JSON: {e}", args[1]);
            return ExitCode::FAILURE;
        }
    };

    let t0 = Instant::now();
    let set = match PolicySet::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;

    // The first decision, checked, then a warm-up of a tenth of N.
    let first = match set.decide(Point::Admission, &input) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "decision {}",
        serde_json::to_string(&first).unwrap_or_default()
    );
    for _ in 0..n.div_ceil(10) {
        if set.decide(Point::Admission, &input).is_err() {
            eprintln!("evaluation failed during warm-up");
            return ExitCode::FAILURE;
        }
    }

    let mut times = Vec::with_capacity(n);
    let mut failures = 0usize;
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        match set.decide(Point::Admission, &input) {
            Ok(d) if d == first => {}
            _ => failures += 1,
        }
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let wall = start.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / n as f64;
    println!(
        "engine=regorus n={n} load_ms={load_ms:.1} mean_us={mean:.1} p50_us={:.1} p99_us={:.1} max_us={:.1} per_s={:.0} deny={} warn={} failures={failures}",
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        times[n - 1],
        n as f64 / wall,
        first.deny.len(),
        first.warn.len(),
    );
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
