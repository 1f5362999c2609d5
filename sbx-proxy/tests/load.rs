//! Load: 1,000 tunnels open at the same time, each moving data both ways through the proxy,
//! with no errors and bounded memory.

mod common;

use std::sync::Arc;

use common::*;
use sbx_proxy::{Decision, Limits, Preset};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Barrier;

const TUNNELS: usize = 1000;
const BYTES: usize = 64 * 1024;

fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
        assert!(limit.rlim_cur >= want.min(limit.rlim_max));
    }
}

/// Peak resident memory of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_tunnels() {
    raise_fd_limit(8 * TUNNELS as u64);
    let echo = echo_origin().await;
    let mut setup = Setup::new(policy(Preset::Balanced, &["origin.test"], &[], &["127.0.0.1/32"]));
    setup.limits = Limits { max_connections: 2 * TUNNELS, ..Limits::default() };
    let proxy = Arc::new(setup.start().await);
    let authority = format!("origin.test:{}", echo.port());
    let open = Arc::new(Barrier::new(TUNNELS));
    let mut tasks = Vec::new();
    for i in 0..TUNNELS {
        let (proxy, authority, open) = (proxy.clone(), authority.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            let (stream, head) = raw_connect(&proxy, &authority).await;
            assert!(head.starts_with("HTTP/1.1 200"), "tunnel {i}: {head}");
            // Every tunnel is open at this point before any data moves.
            open.wait().await;
            let (mut r, mut w) = stream.into_split();
            let payload: Vec<u8> = (0..BYTES).map(|j| (i + j) as u8).collect();
            let expected = payload.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&payload).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut got = Vec::with_capacity(BYTES);
            r.read_to_end(&mut got).await.unwrap();
            writer.await.unwrap();
            if got != expected {
                let at = got.iter().zip(&expected).position(|(a, b)| a != b);
                panic!(
                    "tunnel {i}: data corrupted: {} of {} bytes, first difference at {at:?}",
                    got.len(),
                    expected.len()
                );
            }
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += usize::from(task.await.is_err());
    }
    let log = proxy.log_at_least(TUNNELS).await;
    let short: Vec<_> = log.iter().filter(|e| e.bytes_down != BYTES as u64).collect();
    assert!(failed == 0 && short.is_empty(), "{failed} tunnels failed; the proxy's records of them: {short:#?}");
    assert_eq!(log.len(), TUNNELS);
    assert!(
        log.iter().all(|e| e.decision == Decision::Allow && e.bytes_up == BYTES as u64 && e.bytes_down == BYTES as u64)
    );
    // Clients, echo origin and proxy share this process: 1,000 tunnels of 64 KiB each way stay
    // far below this bound (buffers are per connection, not per byte moved).
    let peak = peak_rss_kib();
    eprintln!("peak RSS with {TUNNELS} tunnels: {} MiB", peak / 1024);
    assert!(peak < 768 * 1024, "peak RSS {peak} KiB");
}
