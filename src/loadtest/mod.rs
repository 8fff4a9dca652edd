//! `ui-gateway loadtest` (docs/configuration.md "ui-gateway loadtest"): a load generator that speaks the real browser protocol,
//! so it can target any server with the same wire format.
//!
//! Each simulated session is one task ([`client::run_session`]) going through the phases the
//! orchestrator ([`run`]) opens one after the other: set-up (`GET /`, the redirect, `GET /<id>`, the
//! WebSocket, `watch 1`, the scenario's creates) with `--concurrency` set-ups in flight and `--rate`
//! starts per second; then, once every session is established or failed, the actions (the set-up
//! phase is the warm-up: nothing it does is in the round-trip figures); then `--hold`; then close 1000;
//! then, unless `--keep-sessions`, `DELETE /<id>` of every session it was given, so that a run leaves
//! the server as it found it (otherwise its sessions would hold memory until `--session-timeout`).

pub mod client;
pub mod http;
pub mod report;
pub mod scenario;
pub mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

use crate::units::parse_duration;
use client::{Event, Gates, Outcome, Plan};
use report::{ActionsReport, FramesReport, RemovalReport, Report, RssReport, SessionsReport};
use scenario::Scenario;
use stats::{Latency, Tally};

/// Flags of `ui-gateway loadtest`.
#[derive(Args, Debug, Clone)]
pub struct LoadtestArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub target: String,

    /// Sessions to create.
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,

    /// Session set-ups in flight (and HTTP connections).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,

    /// Session starts per second; 0 = unlimited.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Actions per session.
    #[arg(long, default_value_t = 10)]
    pub actions: usize,

    /// Pause between one session's actions (DUR).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub interval: Duration,

    /// Keep all connections open this long before closing (DUR).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub hold: Duration,

    /// Scenario JSON file; default: the built-in demo scenario.
    #[arg(long)]
    pub scenario: Option<PathBuf>,

    /// Server process id on this host, for its RSS (/proc/<pid>/status VmRSS).
    #[arg(long)]
    pub pid: Option<u32>,

    /// Limit on every awaited step (DUR).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Failed sessions + failed actions ÷ attempts above this exits with 1.
    #[arg(long, default_value_t = 0.01, value_parser = parse_fraction)]
    pub max_error_rate: f64,

    /// Print one JSON report object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Leave the sessions on the server at the end instead of removing them with `DELETE /<id>`.
    #[arg(long)]
    pub keep_sessions: bool,
}

impl Default for LoadtestArgs {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: LoadtestArgs,
        }
        <Wrapper as clap::Parser>::try_parse_from(["loadtest"]).expect("defaults parse").args
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a rate (a number ≥ 0 of session starts per second)")),
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

/// A problem with the command line or its inputs (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Resident set size of a process, KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// This process's soft open-file limit (Linux), from `/proc/self/limits`.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Runs a load test and returns its report (warnings go to stderr).
pub async fn run(args: &LoadtestArgs) -> Result<Report, UsageError> {
    let (scenario, scenario_name) = match &args.scenario {
        Some(path) => (Scenario::load(path).map_err(|e| UsageError(e.to_string()))?, path.display().to_string()),
        None => (Scenario::builtin(), "built-in demo".to_string()),
    };
    let target = http::Target::resolve(&args.target).await.map_err(UsageError)?;
    let rss_before = match args.pid {
        Some(pid) => Some(rss_kib(pid).ok_or_else(|| UsageError(format!("--pid {pid}: cannot read its VmRSS")))?),
        None => None,
    };
    let need = 2 * args.sessions as u64 + 100;
    if let Some(limit) = open_file_limit().filter(|l| *l < need) {
        eprintln!(
            "ui-gateway loadtest: warning: the open-file limit is {limit}, below 2 × sessions + 100 = {need} \
             (raise it with `ulimit -n`)"
        );
    }

    let plan = Arc::new(Plan {
        http: http::HttpPool::new(target.clone()),
        target,
        setup_frame: scenario.setup_frame(),
        action_frames: scenario.action_frames(),
        action_id: scenario.action_id(),
        observe_id: scenario.observe_id(),
        actions: args.actions,
        interval: args.interval,
        timeout: args.timeout,
        sessions: args.sessions,
        rate: args.rate,
        setups: Semaphore::new(args.concurrency as usize),
        frames_sent: AtomicU64::new(0),
        frames_received: AtomicU64::new(0),
    });
    let (actions_tx, actions_rx) = watch::channel(false);
    let (close_tx, close_rx) = watch::channel(false);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let start = Instant::now();
    let gates = Gates { start, actions: actions_rx, close: close_rx };
    let tasks: Vec<_> = (0..args.sessions)
        .map(|i| tokio::spawn(client::run_session(plan.clone(), i, gates.clone(), events_tx.clone())))
        .collect();
    drop(events_tx);

    // Set-up phase.
    let mut established = 0usize;
    let mut failures = Tally::default();
    let mut setup_latencies = Vec::with_capacity(args.sessions);
    let mut last_setup = start;
    let mut first_failure: Option<String> = None;
    while established + (failures.total() as usize) < args.sessions {
        match events.recv().await {
            Some(Event::Established { latency }) => {
                established += 1;
                setup_latencies.push(latency);
                last_setup = Instant::now();
            }
            Some(Event::SetupFailed { failure, detail }) => {
                if first_failure.is_none() {
                    first_failure = Some(format!("{detail}: {failure:?}"));
                }
                failures.add(failure.key(), 1);
                last_setup = Instant::now();
            }
            Some(Event::ActionsDone) => {}
            None => break,
        }
    }
    let setup_seconds = last_setup.duration_since(start).as_secs_f64();
    if let Some(f) = &first_failure {
        eprintln!("ui-gateway loadtest: first failed set-up: {f}");
    }
    let rss_after_setup = args.pid.and_then(rss_kib);

    // Action phase.
    let frames_before = plan.frames_sent.load(Ordering::Relaxed) + plan.frames_received.load(Ordering::Relaxed);
    let actions_start = Instant::now();
    let _ = actions_tx.send(true);
    let mut done = 0usize;
    while done < established {
        match events.recv().await {
            Some(Event::ActionsDone) => done += 1,
            Some(_) => {}
            None => break,
        }
    }
    let action_seconds = actions_start.elapsed().as_secs_f64();
    let frames_after = plan.frames_sent.load(Ordering::Relaxed) + plan.frames_received.load(Ordering::Relaxed);
    let rss_after_actions = args.pid.and_then(rss_kib);

    tokio::time::sleep(args.hold).await;
    let _ = close_tx.send(true);
    let mut outcome = Outcome::default();
    let mut handed_out = Vec::with_capacity(args.sessions);
    for t in tasks {
        if let Ok(o) = t.await {
            outcome.round_trips.extend(o.round_trips);
            outcome.actions_failed.merge(&o.actions_failed);
            outcome.errors.merge(&o.errors);
            outcome.late_closes.merge(&o.late_closes);
            handed_out.extend(o.session);
            outcome.reconnects.merge(&o.reconnects);
        }
    }
    let removal = if args.keep_sessions {
        RemovalReport { kept: handed_out.len(), ..Default::default() }
    } else {
        remove_sessions(&plan, handed_out, args.concurrency as usize).await
    };

    let failed = args.sessions - established;
    let attempted = (established * args.actions) as u64;
    let actions_failed = outcome.actions_failed.total();
    let completed = outcome.round_trips.len() as u64;
    let attempts = args.sessions as u64 + attempted;
    let error_rate = if attempts == 0 { 0.0 } else { (failed as u64 + actions_failed) as f64 / attempts as f64 };
    let rss = match (args.pid, rss_before, rss_after_setup) {
        (Some(pid), Some(before), Some(after)) => Some(RssReport {
            pid,
            before_kib: before,
            after_setup_kib: after,
            after_actions_kib: rss_after_actions.unwrap_or(0),
            per_session_kib: if established == 0 { 0.0 } else { (after as f64 - before as f64) / established as f64 },
        }),
        _ => None,
    };
    Ok(Report {
        target: args.target.clone(),
        scenario: scenario_name,
        sessions: SessionsReport {
            requested: args.sessions,
            established,
            failed,
            failures,
            setup_seconds,
            per_second: if setup_seconds > 0.0 { established as f64 / setup_seconds } else { 0.0 },
            setup_latency: Latency::of(&mut setup_latencies),
            lost: outcome.late_closes,
            removal,
            reconnects: outcome.reconnects,
        },
        actions: ActionsReport {
            per_session: args.actions,
            interval_ms: args.interval.as_secs_f64() * 1e3,
            attempted,
            completed,
            failed: actions_failed,
            failures: outcome.actions_failed,
            seconds: action_seconds,
            per_second: if action_seconds > 0.0 { completed as f64 / action_seconds } else { 0.0 },
            round_trip: Latency::of(&mut outcome.round_trips),
        },
        frames: FramesReport {
            sent: plan.frames_sent.load(Ordering::Relaxed),
            received: plan.frames_received.load(Ordering::Relaxed),
            per_second: if action_seconds > 0.0 { (frames_after - frames_before) as f64 / action_seconds } else { 0.0 },
        },
        errors: outcome.errors,
        rss,
        error_rate,
        max_error_rate: args.max_error_rate,
        passed: error_rate <= args.max_error_rate,
    })
}

/// `DELETE /<id>` of every session `GET /` handed out, `concurrency` at a time. A `404` means the
/// server had already ended it (evicted, expired): gone all the same, counted apart.
async fn remove_sessions(plan: &Arc<Plan>, ids: Vec<String>, concurrency: usize) -> RemovalReport {
    let mut report = RemovalReport::default();
    let mut pending = tokio::task::JoinSet::new();
    let mut ids = ids.into_iter();
    loop {
        while pending.len() < concurrency.max(1) {
            let Some(id) = ids.next() else { break };
            let plan = plan.clone();
            pending.spawn(async move {
                match tokio::time::timeout(plan.timeout, plan.http.delete(&format!("/{id}"))).await {
                    Ok(Ok(answer)) => Ok(answer.status.as_u16()),
                    Ok(Err(e)) => Err(client::Failure::Connect(e.to_string())),
                    Err(_) => Err(client::Failure::Timeout),
                }
            });
        }
        let Some(done) = pending.join_next().await else { break };
        match done.expect("a DELETE task does not panic") {
            Ok(204) => report.removed += 1,
            Ok(404) => report.already_gone += 1,
            Ok(status) => report.failures.add(client::Failure::Http(status).key(), 1),
            Err(failure) => report.failures.add(failure.key(), 1),
        }
    }
    report
}

/// The `loadtest` subcommand: runs, prints, and maps the result to the exit code (0 ok, 1 above
/// `--max-error-rate`, 2 usage error).
pub fn main(args: LoadtestArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
            } else {
                print!("{}", report.text());
            }
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("ui-gateway loadtest: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let d = LoadtestArgs::default();
        assert_eq!(d.target, "http://127.0.0.1:8000");
        assert_eq!((d.sessions, d.concurrency, d.actions), (100, 50, 10));
        assert_eq!(d.rate, 0.0);
        assert_eq!(d.interval, Duration::from_millis(100));
        assert_eq!(d.hold, Duration::ZERO);
        assert_eq!(d.timeout, Duration::from_secs(5));
        assert_eq!(d.max_error_rate, 0.01);
        assert!(d.scenario.is_none() && d.pid.is_none() && !d.json);
        assert!(!d.keep_sessions, "a run removes its sessions unless told otherwise");
    }

    #[test]
    fn flag_values_are_checked() {
        assert!(parse_rate("0").is_ok() && parse_rate("250.5").is_ok());
        assert!(parse_rate("-1").is_err() && parse_rate("x").is_err() && parse_rate("inf").is_err());
        assert!(parse_fraction("0.5").is_ok() && parse_fraction("1.5").is_err());
    }

    #[test]
    fn rss_of_this_process() {
        if cfg!(target_os = "linux") {
            assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
            assert!(open_file_limit().is_some());
        }
    }
}
