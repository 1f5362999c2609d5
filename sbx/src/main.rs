//! The `sbx` executable; see the library for the CLI.

fn main() -> std::process::ExitCode {
    sbx::main()
}
