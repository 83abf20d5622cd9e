//! daytime and time, our client against our server.

use chrono::{DateTime, Utc};

use crate::util::{Daemon, run};

fn seconds_from_now(utc: &str) -> i64 {
    let at: DateTime<Utc> = utc.parse().unwrap();
    (at - Utc::now()).num_seconds().abs()
}

#[test]
fn daytime_and_time_over_tcp_and_udp() {
    let server =
        Daemon::start(&["daytime", "serve", "--port", "0", "--time-port", "0", "--bind", "127.0.0.1,::1"], 8);
    for transport in ["tcp", "udp"] {
        for l in server.listening.iter().filter(|l| l.service == "daytime" && l.transport == transport) {
            let mut args =
                vec!["daytime", "get", &l.addr.to_string()].into_iter().map(String::from).collect::<Vec<_>>();
            if transport == "udp" {
                args.push("--udp".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let text = run(&args, b"").ok().to_owned();
            assert!(text.ends_with('\n') && !text.contains('\r'), "{text:?}");
            let year = Utc::now().format("%Y").to_string();
            assert!(text.contains(&year), "{text}");
            let json = run(&[&args[..], &["--json"]].concat(), b"").json_of("answer");
            assert_eq!(json["protocol"], "daytime");
            assert_eq!(json["server"], l.addr.to_string());
        }
        for l in server.listening.iter().filter(|l| l.service == "time" && l.transport == transport) {
            let target = l.addr.to_string();
            let mut args = vec!["daytime", "get", &target, "--time", "--json"];
            if transport == "udp" {
                args.push("--udp");
            }
            let json = run(&args, b"").json_of("answer");
            assert_eq!(json["protocol"], "time");
            assert!(seconds_from_now(json["utc"].as_str().unwrap()) < 5, "{json}");
            let since_1900 = json["seconds_since_1900"].as_u64().unwrap() as i64;
            assert!((since_1900 - 2_208_988_800 - Utc::now().timestamp()).abs() < 5);
        }
    }
}

#[test]
fn a_daytime_client_refuses_an_answer_that_is_not_daytime() {
    // An echo server answers a time request with the empty datagram it got.
    let echo = Daemon::start(&["echo", "serve", "--port", "0", "--udp"], 1);
    let target = echo.addr("echo", "udp").to_string();
    let out = run(&["daytime", "get", &target, "--udp", "--time"], b"");
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("an RFC 868 answer is 4 bytes, got 0"), "{}", out.stderr);
}
