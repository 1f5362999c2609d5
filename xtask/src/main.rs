//! `cargo xtask …`: developer tasks (benchmarks, the end-to-end example). Never shipped.

mod bench_build;
mod bench_lock;
mod bench_proxy;
mod bench_start;
mod example;
mod sbx_bin;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") if args.get(1).map(String::as_str) == Some("build") => bench_build::run(&args[2..]),
        Some("bench") if args.get(1).map(String::as_str) == Some("lock") => bench_lock::run(&args[2..]),
        Some("bench") if args.get(1).map(String::as_str) == Some("proxy") => bench_proxy::run(&args[2..]),
        Some("bench") if args.get(1).map(String::as_str) == Some("start") => bench_start::run(&args[2..]),
        Some("example") => example::run(&args[1..]),
        Some(other) => anyhow::bail!("unknown xtask `{other}`"),
        None => {
            eprintln!("usage: cargo xtask bench <lock|build|proxy|start> [ARGS…] | cargo xtask example [-- CMD…]");
            Ok(())
        }
    }
}
