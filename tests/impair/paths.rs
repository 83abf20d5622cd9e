//! Issue 15.8 and 15.9: protocols whose server answers from another port,
//! and datagrams too big for the path.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use super::{proxy, stats};
use crate::util::{Daemon, binary, require, run_command};

/// Issue 15.8: TFTP could not pass (the server answers from a new port, its
/// transfer id, and the connected upstream socket dropped it).
#[test]
fn tftp_passes_through_the_proxy() {
    require("in.tftpd", "tftpd-hpa");
    require("atftp", "atftp");
    let served = tempfile::tempdir().unwrap();
    std::fs::set_permissions(served.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let content = binary(200_000);
    let file = served.path().join("boot.img");
    std::fs::write(&file, &content).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    // A free port for the server: held until just before it starts.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new("in.tftpd")
        .args(["-L", "-a", &format!("127.0.0.1:{port}"), "-s", served.path().to_str().unwrap()])
        .spawn()
        .unwrap();
    let relay = proxy(([127, 0, 0, 1], port).into(), &["--loss", "2%", "--seed", "9"]);
    let target = relay.addr("impair", "udp");
    let got = tempfile::tempdir().unwrap();
    let local = got.path().join("boot.img");
    let mut get = Command::new("atftp");
    get.args([
        "--get",
        "-r",
        "boot.img",
        "-l",
        local.to_str().unwrap(),
        "127.0.0.1",
        &target.port().to_string(),
    ]);
    // The server may still be starting: a few tries, each a real transfer.
    let mut fetched = None;
    for _ in 0..5 {
        let out = run_command(&mut get, b"");
        if out.status.success() && std::fs::read(&local).is_ok_and(|c| c == content) {
            fetched = Some(out);
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(fetched.is_some(), "atftp did not get the file through the proxy");
    let s = stats(&relay);
    assert!(s["down"]["forwarded"].as_u64().unwrap() > 100, "{s}");
    assert_eq!(s["foreign"], 0, "{s}");
}

/// Issue 15.9: over IPv6, 65,489-65,507-byte datagrams were counted as
/// forwarded and dropped by the kernel (EMSGSIZE).
#[test]
fn datagrams_too_big_for_the_path_are_counted_as_dropped() {
    let echo = Daemon::start(&["echo", "serve", "--udp", "--port", "0", "--bind", "::1"], 1);
    let upstream = echo.addr("echo", "udp");
    let relay = super::proxy_on("[::1]:0", upstream, &[]);
    let socket = UdpSocket::bind("[::1]:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let target = relay.addr("impair", "udp");
    socket.send_to(&[9; 65_500], target).unwrap();
    socket.send_to(b"small", target).unwrap();
    assert_eq!(super::drain(&socket), [b"small".to_vec()]);
    let s = stats(&relay);
    assert_eq!(s["up"]["dropped_unsendable"], 1, "{s}");
    assert_eq!(s["up"]["forwarded"], 1, "{s}");
}
