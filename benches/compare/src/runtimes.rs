//! The runtimes under comparison and the dispatch to each.

mod bastion_rt;
mod floor;
mod kameo_rt;
mod ractor_rt;
mod supervisors_rt;

use std::fmt;
use std::str::FromStr;

use crate::workload::{Params, Sample, Workload};

/// One runtime of the comparison, in column order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// A bare tokio task and a bounded mpsc channel.
    Floor,
    /// This workspace's `supervisors`.
    Supervisors,
    /// ractor.
    Ractor,
    /// kameo.
    Kameo,
    /// bastion.
    Bastion,
}

impl Runtime {
    /// All runtimes, in column order.
    pub(crate) const ALL: [Runtime; 5] = [
        Runtime::Floor,
        Runtime::Supervisors,
        Runtime::Ractor,
        Runtime::Kameo,
        Runtime::Bastion,
    ];

    /// The name used on the command line and in the table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Runtime::Floor => "floor",
            Runtime::Supervisors => "supervisors",
            Runtime::Ractor => "ractor",
            Runtime::Kameo => "kameo",
            Runtime::Bastion => "bastion",
        }
    }

    /// Runs one workload in this process and returns its sample.
    pub(crate) fn run(self, workload: Workload, p: Params) -> anyhow::Result<Sample> {
        match self {
            Runtime::Floor => floor::run(workload, p),
            Runtime::Supervisors => supervisors_rt::run(workload, p),
            Runtime::Ractor => ractor_rt::run(workload, p),
            Runtime::Kameo => kameo_rt::run(workload, p),
            Runtime::Bastion => bastion_rt::run(workload, p),
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Runtime {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown runtime {s:?}"))
    }
}
