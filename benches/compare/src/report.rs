//! The parent side: runs every (workload, runtime) pair in child
//! processes, interleaved over rounds, and prints the table.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Options;
use crate::measure::median;
use crate::runtimes::Runtime;
use crate::workload::{Params, Sample, Workload};

/// How a runtime says that it cannot run a workload.
pub(crate) const NOT_MEASURED: &str = "not measured";

/// How long one child may run before it counts as hung.
const CHILD_LIMIT: Duration = Duration::from_secs(600);

/// Runs everything `options` asks for and prints the tables.
pub(crate) fn run(options: &Options) -> anyhow::Result<()> {
    let params = if options.quick {
        Params::quick()
    } else {
        Params::full()
    };
    let load_before = loadavg();
    let started = Instant::now();
    let mut results = Results::default();
    for &workload in &options.workloads {
        for round in 1..=options.rounds {
            for &runtime in &options.runtimes {
                let outcome = run_child(runtime, workload, options.quick);
                match &outcome {
                    Ok(s) => eprintln!(
                        "{workload} round {round}/{}: {runtime} {}",
                        options.rounds,
                        format_value(workload, s.value)
                    ),
                    Err(e) => eprintln!("{workload} round {round}: {runtime} failed: {e:#}"),
                }
                results.add(workload, runtime, round, outcome);
            }
        }
    }
    println!();
    println!(
        "{} processes, {} messages, {} calls, {} restarts (first/last {}), \
         group of {} x {} broadcasts; median of {} interleaved rounds; \
         {} cores; load average {} before, {} after; {:.0} s",
        params.processes,
        params.messages,
        params.calls,
        params.restarts,
        params.restart_slice,
        params.members,
        params.broadcasts,
        options.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    println!();
    print_table(&results, options, &params);
    println!();
    print_goals(&results, &params);
    Ok(())
}

/// Runs one workload on one runtime in a fresh child process.
fn run_child(runtime: Runtime, workload: Workload, quick: bool) -> anyhow::Result<Sample> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["--child", runtime.name(), workload.name()]);
    if quick {
        cmd.arg("--quick");
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            anyhow::bail!("no result within {CHILD_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err)?;
    }
    if let Some(error) = out.lines().find_map(|l| l.strip_prefix("error ")) {
        anyhow::bail!("{error}");
    }
    let sample = out.lines().find_map(Sample::decode);
    match sample {
        Some(sample) if status.success() => Ok(sample),
        _ => {
            let tail: String = err.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
            anyhow::bail!("exit {status}: {tail}")
        }
    }
}

/// Samples per (workload, runtime) by round, and the last error of each.
#[derive(Default)]
struct Results {
    samples: BTreeMap<(usize, usize), BTreeMap<usize, Sample>>,
    errors: BTreeMap<(usize, usize), String>,
}

impl Results {
    fn add(&mut self, w: Workload, r: Runtime, round: usize, outcome: anyhow::Result<Sample>) {
        let key = (w as usize, r as usize);
        match outcome {
            Ok(s) => {
                self.samples.entry(key).or_default().insert(round, s);
            }
            Err(e) => {
                self.errors.insert(key, format!("{e:#}"));
            }
        }
    }

    /// The median of one figure over the rounds, if any round succeeded.
    fn median(&self, w: Workload, r: Runtime, pick: Pick) -> Option<f64> {
        let samples = self.samples.get(&(w as usize, r as usize))?;
        let mut values: Vec<f64> = samples.values().filter_map(|s| pick.of(s)).collect();
        (!values.is_empty()).then(|| median(&mut values))
    }

    /// The median over rounds of `a / b` within each round: runs of one
    /// round are adjacent in time, so their ratio shares the machine's
    /// load of that moment.
    fn paired_ratio(&self, w: Workload, a: (Runtime, Pick), b: (Runtime, Pick)) -> Option<f64> {
        let xs = self.samples.get(&(w as usize, a.0 as usize))?;
        let ys = self.samples.get(&(w as usize, b.0 as usize))?;
        let mut ratios: Vec<f64> = xs
            .iter()
            .filter_map(|(round, x)| Some(a.1.of(x)? / b.1.of(ys.get(round)?)?))
            .collect();
        (!ratios.is_empty()).then(|| median(&mut ratios))
    }

    fn error(&self, w: Workload, r: Runtime) -> Option<&str> {
        self.errors
            .get(&(w as usize, r as usize))
            .map(String::as_str)
    }
}

/// Which figure of a sample a row shows.
#[derive(Clone, Copy)]
enum Pick {
    Value,
    First,
    Last,
    Cpu,
}

impl Pick {
    fn of(self, s: &Sample) -> Option<f64> {
        match self {
            Pick::Value => Some(s.value),
            Pick::First => s.first,
            Pick::Last => s.last,
            Pick::Cpu => s.cpu,
        }
    }
}

/// The rows of the table: workload, figure, label.
fn rows(params: &Params) -> Vec<(Workload, Pick, String)> {
    let slice = thousands(params.restart_slice as u64);
    let total = thousands(params.restarts as u64);
    vec![
        (Workload::Memory, Pick::Value, "idle process memory".into()),
        (
            Workload::Spawn,
            Pick::Value,
            "spawn under a supervisor, per process".into(),
        ),
        (
            Workload::Spawn,
            Pick::Cpu,
            "spawn, CPU time of all threads per process".into(),
        ),
        (
            Workload::Message,
            Pick::Value,
            "one-way message, one receiver".into(),
        ),
        (Workload::Call, Pick::Value, "call round trip".into()),
        (
            Workload::TimedCall,
            Pick::Value,
            "call round trip with a timeout".into(),
        ),
        (Workload::Restart, Pick::Value, "restart, median".into()),
        (
            Workload::Restart,
            Pick::First,
            format!("restart, median of first {slice} of {total}"),
        ),
        (
            Workload::Restart,
            Pick::Last,
            format!("restart, median of last {slice} of {total}"),
        ),
        (
            Workload::Broadcast,
            Pick::Value,
            format!(
                "broadcast to {} members, per delivery",
                thousands(params.members as u64)
            ),
        ),
    ]
}

fn print_table(results: &Results, options: &Options, params: &Params) {
    let mut header = String::from("| workload |");
    let mut rule = String::from("| --- |");
    for r in &options.runtimes {
        header.push_str(&format!(" {r} |"));
        rule.push_str(" ---: |");
    }
    println!("{header}");
    println!("{rule}");
    for (w, pick, label) in rows(params) {
        if !options.workloads.contains(&w) {
            continue;
        }
        let ours = results.median(w, Runtime::Supervisors, pick);
        let mut line = format!("| {label} |");
        for &r in &options.runtimes {
            let cell = match (results.median(w, r, pick), ours) {
                (Some(v), Some(o)) if r != Runtime::Supervisors => {
                    format!("{} ({:.2}x)", format_value(w, v), v / o)
                }
                (Some(v), _) => format_value(w, v),
                (None, _) => match results.error(w, r) {
                    Some(e) if e.starts_with(NOT_MEASURED) => "n/a".into(),
                    Some(_) => "failed".into(),
                    None => "-".into(),
                },
            };
            line.push_str(&format!(" {cell} |"));
        }
        println!("{line}");
    }
    println!();
    println!("(x) = runtime / supervisors: above 1 the runtime costs more than supervisors.");
    for w in Workload::ALL {
        for &r in &options.runtimes {
            if let Some(e) = results.error(w, r) {
                println!("{w} on {r}: {e}");
            }
        }
    }
}

/// The goals for `supervisors`, as ratios to the floor: the ratio of the
/// medians, and the median of the ratios within each round.
fn print_goals(results: &Results, params: &Params) {
    println!("| goal | supervisors / floor (medians) | same, paired by round | goal | met |");
    println!("| --- | ---: | ---: | ---: | --- |");
    let goals = [
        (Workload::Memory, Pick::Value, "idle process memory", 1.25),
        (
            Workload::Spawn,
            Pick::Value,
            "spawn under a dynamic supervisor",
            1.5,
        ),
        (
            Workload::Spawn,
            Pick::Cpu,
            "(spawn, CPU time instead of wall time)",
            1.5,
        ),
        (Workload::Message, Pick::Value, "one-way message", 2.0),
        (Workload::Call, Pick::Value, "call round trip", 1.5),
        (Workload::Restart, Pick::Value, "restart median", 1.25),
        (
            Workload::Broadcast,
            Pick::Value,
            "broadcast, per delivery",
            3.0,
        ),
    ];
    let ours = |w| (Runtime::Supervisors, w);
    for (w, pick, label, goal) in goals {
        let o = results.median(w, Runtime::Supervisors, pick);
        let f = results.median(w, Runtime::Floor, pick);
        let paired = results.paired_ratio(w, ours(pick), (Runtime::Floor, pick));
        if let (Some(o), Some(f), Some(paired)) = (o, f, paired) {
            print_goal(label, o / f, paired, goal);
        }
    }
    let w = Workload::Restart;
    let first = results.median(w, Runtime::Supervisors, Pick::First);
    let last = results.median(w, Runtime::Supervisors, Pick::Last);
    let paired = results.paired_ratio(w, ours(Pick::Last), ours(Pick::First));
    if let (Some(first), Some(last), Some(paired)) = (first, last, paired) {
        let slice = thousands(params.restart_slice as u64);
        let label = format!("restart: last {slice} / first {slice} (supervisors alone)");
        print_goal(&label, last / first, paired, STORM_TOLERANCE);
    }
    println!();
    println!("A goal counts as met when both ratios are within it.");
}

fn print_goal(label: &str, ratio: f64, paired: f64, goal: f64) {
    let met = match (ratio <= goal, paired <= goal) {
        (true, true) => "yes",
        (false, false) => "no",
        _ => "borderline",
    };
    println!("| {label} | {ratio:.2}x | {paired:.2}x | {goal:.2}x | {met} |");
}

/// "The last restarts as fast as the first": within this factor, to
/// allow for noise on a shared machine.
const STORM_TOLERANCE: f64 = 1.25;

/// A figure with its unit: KiB for memory, µs for spawn and restart, ns
/// otherwise.
fn format_value(w: Workload, v: f64) -> String {
    match w {
        Workload::Memory => format!("{:.2} KiB", v / 1024.0),
        Workload::Spawn | Workload::Restart => format!("{:.2} µs", v / 1000.0),
        Workload::Message | Workload::Call | Workload::TimedCall | Workload::Broadcast => {
            format!("{v:.0} ns")
        }
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
