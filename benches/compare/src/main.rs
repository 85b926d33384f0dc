//! Runs the same workloads on a bare tokio task (the floor),
//! `supervisors`, ractor, kameo and bastion, and prints one table with
//! each runtime's figures and their ratio to `supervisors`.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- [--quick] [--only WORKLOAD]...
//! ```
//!
//! Every run of a workload on a runtime happens in a fresh child process
//! of this binary, so allocator state and global runtimes never leak from
//! one measurement into the next. Runs are interleaved (each runtime once,
//! then again) and the table shows the median of the rounds.

mod measure;
mod report;
mod runtimes;
mod workload;

use anyhow::Context as _;

use crate::runtimes::Runtime;
use crate::workload::{Params, Workload};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let options = parse(&args)?;
    report::run(&options)
}

/// What the parent process was asked to do.
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) rounds: usize,
    pub(crate) workloads: Vec<Workload>,
    pub(crate) runtimes: Vec<Runtime>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        quick: false,
        rounds: 5,
        workloads: Vec::new(),
        runtimes: Runtime::ALL.to_vec(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().with_context(|| format!("{arg} needs {what}"));
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => options.workloads.push(value("a workload")?.parse()?),
            "--rounds" => options.rounds = value("a number")?.parse()?,
            "--runtimes" => {
                options.runtimes = value("a list")?
                    .split(',')
                    .map(str::parse)
                    .collect::<anyhow::Result<_>>()?;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    if options.workloads.is_empty() {
        options.workloads = Workload::ALL.to_vec();
    }
    anyhow::ensure!(options.rounds > 0, "--rounds must be at least 1");
    Ok(options)
}

fn usage() -> String {
    format!(
        "usage: compare [--quick] [--only WORKLOAD]... [--rounds N] [--runtimes a,b,..]\n\
         workloads: {}\n\
         runtimes: {}",
        workload::names(),
        Runtime::ALL.map(Runtime::name).join(", ")
    )
}

/// The child side: `--child RUNTIME WORKLOAD [--quick]`; prints one
/// sample line and exits without tearing the runtime down.
fn child(args: &[String]) -> anyhow::Result<()> {
    let [runtime, workload, rest @ ..] = args else {
        anyhow::bail!("--child needs a runtime and a workload");
    };
    let runtime: Runtime = runtime.parse()?;
    let workload: Workload = workload.parse()?;
    let params = if rest.iter().any(|a| a == "--quick") {
        Params::quick()
    } else {
        Params::full()
    };
    quiet_injected_panics();
    // The parent reads one line; tearing down 100,000 processes is no
    // part of any measurement, so exit at once.
    match runtime.run(workload, params) {
        Ok(sample) => {
            println!("{}", sample.encode());
            std::process::exit(0);
        }
        Err(e) => {
            println!("error {e:#}");
            std::process::exit(1);
        }
    }
}

/// The restart workload panics ten thousand times on purpose; printing
/// each would measure the terminal. Other panics still print.
fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let injected = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|m| m.contains("injected panic"));
        if !injected {
            default(info);
        }
    }));
}
