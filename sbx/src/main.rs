//! The `sbx` command line.

fn main() {
    println!("sbx");
}
