//! Benchmark of the gateway (issue 17); placeholder while it is written.
fn main() {}
