//! `cargo xtask …`: developer tasks (benchmarks, fixture recording, CI helpers). Never shipped.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(other) => anyhow::bail!("unknown xtask `{other}`"),
        None => {
            eprintln!("usage: cargo xtask <task>");
            Ok(())
        }
    }
}
