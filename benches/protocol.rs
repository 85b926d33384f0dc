//! Frame codec benchmarks.

fn main() {}
