//! `sbx-fixtures serve [--root DIR] [--port N]`: serve recorded upstreams on 127.0.0.1.
//! `sbx-fixtures generate [DIR]`: regenerate `fixtures/upstream/`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("generate") => {
            let root = args.next().map(PathBuf::from).unwrap_or_else(sbx_fixtures::default_root);
            sbx_fixtures::generate::generate(&root)?;
            println!("wrote {}", root.display());
            Ok(())
        }
        Some("serve") => {
            let mut root = sbx_fixtures::default_root();
            let mut port = 0u16;
            while let Some(flag) = args.next() {
                let value = args.next().with_context(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--root" => root = PathBuf::from(value),
                    "--port" => port = value.parse().context("--port must be a number")?,
                    other => bail!("unknown flag {other}"),
                }
            }
            let server = sbx_fixtures::FixtureServer::start_on(&root, SocketAddr::from(([127, 0, 0, 1], port)))?;
            println!("{}", server.base_url());
            println!("export SBX_NODE_URL={0}/node SBX_GO_URL={0}/go SBX_GITHUB_API_URL={0}/github", server.base_url());
            loop {
                std::thread::park();
            }
        }
        _ => bail!("usage: sbx-fixtures serve [--root DIR] [--port N] | sbx-fixtures generate [DIR]"),
    }
}
