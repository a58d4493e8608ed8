//! `fault-proxy`: the test proxy as a standalone process, for shell benchmarks.
#[tokio::main]
async fn main() {
    if let Err(e) = testkit::proxy::cli_main(std::env::args().skip(1)).await {
        eprintln!("fault-proxy: {e}");
        std::process::exit(2);
    }
}
