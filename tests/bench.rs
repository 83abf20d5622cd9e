//! The load generators, briefly, against our own servers.

use crate::util::{Daemon, run};

#[test]
fn bench_echo_reports_throughput_and_latency_over_tcp_and_udp() {
    let server = Daemon::start(&["echo", "serve", "--port", "0"], 2);
    for (transport, extra) in [("tcp", &["--pipeline", "4"][..]), ("udp", &[][..])] {
        let target = server.addr("echo", transport).to_string();
        let mut args = vec!["bench", "echo", &target, "-c", "4", "-d", "500ms", "-s", "32", "--json"];
        args.extend_from_slice(extra);
        if transport == "udp" {
            args.push("--udp");
        }
        let report = run(&args, b"").json_of("report");
        assert_eq!(report["transport"], transport);
        assert_eq!(report["connections"], 4);
        assert_eq!(report["request_bytes"], 32);
        assert_eq!(report["errors"], 0, "{report}");
        assert!(report["requests"].as_u64().unwrap() > 100, "{report}");
        let latency = &report["latency"];
        assert!(latency["p50_us"].as_u64() <= latency["p99_us"].as_u64());
        assert!(latency["p99_us"].as_u64() <= latency["max_us"].as_u64());
    }
}

#[test]
fn bench_echo_counts_wrong_answers_as_errors() {
    // A daytime server answers, but not with an echo of the request.
    let server = Daemon::start(&["daytime", "serve", "--port", "0", "--time-port", "0", "--udp"], 2);
    let target = server.addr("time", "udp").to_string();
    let out = run(&["bench", "echo", &target, "--udp", "-c", "1", "-d", "300ms", "-s", "4", "--json"], b"");
    let report = out.json_of("report");
    assert_eq!(report["requests"], 0);
    assert!(report["errors"].as_u64().unwrap() > 0);
}
