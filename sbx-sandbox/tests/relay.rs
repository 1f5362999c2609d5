//! sbx-init's proxy relay, run as it runs inside every sandbox: a TCP port on 127.0.0.1 whose
//! connections are forwarded to a Unix socket. Bulk data must arrive intact both ways, and a
//! half-close on one side must reach the other (HTTP clients and CONNECT tunnels rely on it).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::process::{Child, Command};
use std::time::Duration;

struct Init(Child);

impl Drop for Init {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8).collect()
}

#[test]
fn relayed_bulk_data_arrives_intact_both_ways_and_half_closes_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let upload = pattern(24 << 20, 7);
    let download = pattern(40 << 20, 99);
    let (expected_upload, down) = (upload.clone(), download.clone());
    // The "proxy": reads the whole upload (until the client's half-close arrives), checks it,
    // then sends the download and closes.
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), expected_upload.len());
        assert!(got == expected_upload, "upload damaged by the relay");
        conn.write_all(&down).unwrap();
    });

    let init = dir.path().join("sbx-init");
    std::fs::write(&init, sbx_sandbox::helper::INIT_BINARY).unwrap();
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _init = Init(
        Command::new(&init)
            .arg("--relay")
            .arg(&socket)
            .args(["--port", &port.to_string(), "--", "sleep", "600"])
            .spawn()
            .unwrap(),
    );
    let mut client = (0..300)
        .find_map(|_| {
            TcpStream::connect(("127.0.0.1", port)).ok().or_else(|| {
                std::thread::sleep(Duration::from_millis(10));
                None
            })
        })
        .expect("the relay listens");
    client.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    client.write_all(&upload).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), download.len());
    assert!(got == download, "download damaged by the relay");
    server.join().unwrap();
}
