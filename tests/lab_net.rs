//! The networking lab: each experiment's facts, checked on the real binary
//! over loopback. Never timings: only what holds however slow the machine.

use serde_json::{Value, json};

use crate::util::run;

fn report(args: &[&str], kind: &str) -> Value {
    let out = run(&[&["lab"], args, &["--json"]].concat(), b"");
    assert!(out.status.success(), "{out:#?}");
    out.json_of(kind)
}

/// The cells of a text table's row that starts with `label` (columns are
/// two or more spaces apart).
fn table_row(text: &str, label: &str) -> Vec<String> {
    let line = text.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label}: {text}"));
    line[label.len()..].split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

/// The closing lesson, on one line.
fn lesson(text: &str) -> String {
    let (_, lesson) = text.rsplit_once("\n\n").unwrap_or_else(|| panic!("no lesson: {text}"));
    lesson.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn framing_delivers_the_bytes_sent_whatever_the_split_and_rebuilds_every_message() {
    let r = report(&["framing", "--size", "100KiB", "--chunk", "3"], "framing");
    let rows = r["rows"].as_array().unwrap();
    let runs: Vec<&str> = rows.iter().map(|r| r["run"].as_str().unwrap()).collect();
    assert_eq!(runs, ["small-sends", "large-send", "newline", "length-prefix"]);
    for row in rows {
        let sizes: u64 = row["recv_sizes"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(sizes, row["bytes_sent"].as_u64().unwrap(), "{row}");
        assert_eq!(row["bytes_received"], row["bytes_sent"], "{row}");
        assert_eq!(row["intact"], true, "{row}");
        assert!(row["data_segments"].as_u64().unwrap() >= 1, "{row}");
    }
    assert_eq!(rows[1]["bytes_sent"], 100 * 1024);
    assert_eq!(rows[0]["send_sizes"], json!([5, 5, 12]));
    for framed in &rows[2..] {
        assert_eq!((&framed["messages_recovered"], &framed["messages_sent"]), (&json!(3), &json!(3)));
        assert!(framed["send_sizes"].as_array().unwrap().iter().all(|n| n.as_u64() <= Some(3)));
    }

    // The lesson says what this run's small sends did.
    let out = run(&["lab", "framing", "--message", "ab", "--message", "cd", "--size", "10KiB"], b"");
    let text = out.ok();
    let recvs: u64 = table_row(text, "small sends, recv later")[2].parse().unwrap();
    let lesson = lesson(text);
    if recvs < 2 {
        assert!(lesson.contains("keeps no boundaries"), "{lesson}");
    } else {
        assert!(lesson.contains("by timing alone"), "{lesson}");
    }
    assert!(lesson.contains("rebuild all 2 messages"), "{lesson}");
}

#[test]
fn eof_is_zero_again_and_again_a_reset_is_an_error_and_ignoring_zero_spins() {
    let r = report(&["eof", "--spin", "50ms"], "eof");
    assert_eq!(r["orderly"], json!([{"result": "data", "bytes": 4}, {"result": "zero"}, {"result": "zero"}]));
    assert_eq!(r["reset"][0]["result"], "error", "{r}");
    assert_eq!(r["reset"][0]["kind"], "ConnectionReset", "{r}");
    let spin = &r["spin"];
    assert!(spin["calls"].as_u64().unwrap() > 1, "{spin}");
    assert_eq!(spin["zeros"], spin["calls"], "every call of the spinning loop returned 0: {spin}");
    assert_eq!(spin["bytes"], 0);
}

#[test]
fn time_wait_holds_the_port_until_both_listeners_set_reuseaddr() {
    let r = report(&["reuseaddr"], "reuseaddr");
    let cases = r["cases"].as_array().unwrap();
    let seen: Vec<(&str, bool, bool, bool, usize)> = cases
        .iter()
        .map(|c| {
            (
                c["closed_first"].as_str().unwrap(),
                c["old_reuseaddr"].as_bool().unwrap(),
                c["new_reuseaddr"].as_bool().unwrap(),
                c["bound"].as_bool().unwrap(),
                c["time_wait"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("server", false, false, false, 1),
            ("server", false, true, false, 1),
            ("server", true, true, true, 1),
            ("client", false, false, true, 0),
        ]
    );
    for c in &cases[..3] {
        assert_eq!(c["time_wait"][0]["state"], "TIME_WAIT");
    }
    for c in &cases[..2] {
        assert!(c["error"].as_str().unwrap().contains("in use"), "{c}");
    }
    assert_eq!(cases[3]["client_time_wait"], 1);
}

#[test]
fn a_server_that_never_accepts_queues_backlog_connections_and_the_rest_wait_until_it_does() {
    let r = report(&["backlog", "--backlog", "2", "--clients", "5", "--wait", "100ms"], "backlog");
    assert_eq!(r["accept_timeout_got_connection"], false);
    assert!(r["nonblocking_accept"].as_str().unwrap().starts_with("EAGAIN"), "{r}");
    let clients = r["clients"].as_array().unwrap();
    let early = clients.iter().filter(|c| c["connected_before_accept"] == true).count();
    assert!((1..=3).contains(&early), "at most backlog + 1 before any accept: {r}");
    assert_eq!(r["accept_queue"], early as u64, "{r}");
    assert!(early < 5, "some clients had to wait: {r}");
    for c in clients.iter().filter(|c| c["connected_before_accept"] == false) {
        assert!(c["completed_after_accept_ms"].is_number(), "a waiting client got in once accepted: {r}");
    }
    assert_eq!(r["accepted"], 5);
}

#[test]
fn only_the_timeout_gives_up_and_only_the_non_blocking_loop_hears_eagain_and_spins() {
    let r = report(&["blocking", "--delay", "50ms", "--timeout", "10ms"], "blocking");
    let rows = r["rows"].as_array().unwrap();
    let seen: Vec<(&str, u64, bool)> = rows
        .iter()
        .map(|r| (r["way"].as_str().unwrap(), r["bytes"].as_u64().unwrap(), r["first_error"].is_string()))
        .collect();
    assert_eq!(
        seen,
        [("blocking", 4, false), ("timeout", 0, true), ("non-blocking", 4, true), ("poll", 4, false)]
    );
    assert!(rows[1]["first_error"].as_str().unwrap().starts_with("EAGAIN"), "{r}");
    assert!(rows[2]["recv_calls"].as_u64().unwrap() > 1, "{r}");
    assert_eq!((&rows[0]["recv_calls"], &rows[3]["recv_calls"]), (&json!(1), &json!(1)));
}

#[test]
fn a_character_split_across_recvs_breaks_chunk_by_chunk_and_survives_a_stream_decoder() {
    let r = report(&["bytes", "--text", "naïve 🦀"], "bytes");
    assert_eq!((&r["chars"], &r["utf8_bytes"]), (&json!(7), &json!(11)));
    let split = &r["split"];
    assert_eq!(split["cut_char"], "ï");
    assert_eq!(split["recv_sizes"], json!([3, 8]));
    assert_eq!(split["carried_over"], "naïve 🦀");
    assert!(split["chunk_by_chunk"].as_str().unwrap().contains('\u{FFFD}'), "{split}");
    let decodings = r["decodings"].as_array().unwrap();
    assert!(decodings[0]["error"].is_string(), "0xFF is never UTF-8: {r}");
    assert_eq!(decodings[1]["text"], "caf\u{FFFD}");
    assert_eq!(decodings[2]["text"], "cafÃ©");

    let ascii = run(&["lab", "bytes", "--text", "hello"], b"");
    let lesson = lesson(ascii.ok());
    assert!(lesson.contains("is ASCII"), "{lesson}");
    assert!(!lesson.contains("Split inside"), "nothing to split in ASCII: {lesson}");
}

#[test]
fn networking_lab_arguments_out_of_range_are_usage_errors() {
    for (args, needle) in [
        (&["lab", "eof", "--spin", "11s"][..], "at most"),
        (&["lab", "framing", "--message", "a\nb"], "newline"),
        (&["lab", "backlog", "--backlog", "0"], "--backlog"),
    ] {
        let out = run(args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {out:#?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn python_races_too_and_the_lesson_follows_what_it_lost() {
    crate::util::require("python3", "python3");
    let r = report(&["race", "--python", "--threads", "3", "--count", "30000"], "race");
    assert_eq!(r["python"]["status"], "ran", "{r}");
    assert_eq!(r["python_increments"], 30_000);
    let rows = r["python_rows"].as_array().unwrap();
    let variants: Vec<&str> = rows.iter().map(|r| r["variant"].as_str().unwrap()).collect();
    assert_eq!(variants, ["+=", "+=", "read, call, write", "with lock"]);
    for row in rows {
        assert_eq!(row["expected"], 90_000);
        assert_eq!(row["got"].as_u64().unwrap() + row["lost"].as_u64().unwrap(), 90_000, "{row}");
    }
    assert_eq!(rows[3]["lost"], 0, "a lock loses nothing: {r}");
    assert_eq!(rows[1]["switch_interval_us"], 1.0);

    let out = run(&["lab", "race", "--python", "--threads", "2", "--count", "20000"], b"");
    let text = out.ok();
    let plus_equals_lost = table_row(text, "+=")[2].replace(',', "");
    let lesson = lesson(text);
    if plus_equals_lost == "0" {
        assert!(lesson.contains("`counter += 1` lost nothing"), "{lesson}");
    } else {
        assert!(lesson.contains(&format!("`counter += 1` lost {}", table_row(text, "+=")[2])), "{lesson}");
    }
    assert!(lesson.contains("With a Lock around it nothing was lost"), "{lesson}");
}

#[test]
fn names_come_from_the_hosts_file_and_the_host_name_is_the_kernels() {
    let r = report(&["names"], "names");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(r["hostname"], kernel.trim());
    let lookups = r["lookups"].as_array().unwrap();
    for l in lookups {
        let name = l["name"].as_str().unwrap();
        if name.parse::<std::net::IpAddr>().is_ok() {
            assert_eq!(l["addrs"], json!([name]), "a numeric address is its own answer: {l}");
        } else if l["error"].is_null() {
            let mut got: Vec<String> = l["addrs"].as_array().unwrap().iter().map(|a| a.to_string()).collect();
            let mut file: Vec<String> =
                l["in_hosts_file"].as_array().unwrap().iter().map(|a| a.to_string()).collect();
            got.sort();
            file.sort();
            file.dedup();
            assert_eq!(got, file, "answered from /etc/hosts: {l}");
        } else {
            assert!(l["in_hosts_file"].as_array().unwrap().is_empty() || r["files_first"] == false, "{l}");
        }
    }
    let localhost = lookups.iter().find(|l| l["name"] == "localhost").unwrap();
    for a in localhost["addrs"].as_array().unwrap() {
        assert!(a.as_str().unwrap().parse::<std::net::IpAddr>().unwrap().is_loopback(), "{localhost}");
    }
}

#[test]
fn anatomy_places_each_value_in_its_region_and_threads_share_the_heap() {
    let r = report(&["anatomy", "--work", "50ms"], "anatomy");
    let region = |what: &str| {
        let placed = r["placed"].as_array().unwrap();
        placed.iter().find(|p| p["what"].as_str().unwrap().starts_with(what)).unwrap()["region"].clone()
    };
    assert_eq!(region("a function"), "code");
    assert_eq!(region("a constant"), "read-only-data");
    assert_eq!(region("an initialised static"), "data");
    assert!(region("a zeroed static") == "data" || region("a zeroed static") == "bss", "{r}");
    assert_eq!(region("a local"), "stack", "the main thread's local is on [stack]: {r}");
    let heap = r["placed"].as_array().unwrap().iter().find(|p| p["what"] == "a heap value (Box)").unwrap();
    let threads = r["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    assert_ne!(threads[0]["local"]["addr"], threads[1]["local"]["addr"]);
    for t in threads {
        assert_eq!(t["local"]["region"], "anonymous", "a thread's own stack: {t}");
        assert_eq!(t["shared_heap_addr"], heap["addr"]);
        assert_eq!(t["shared_heap_value"], 0x00c0_ffee);
    }
    let pcb: Vec<&str> = r["pcb"].as_array().unwrap().iter().map(|f| f[0].as_str().unwrap()).collect();
    assert!(pcb.contains(&"Pid") && pcb.contains(&"State") && pcb.contains(&"VmRSS"), "{pcb:?}");
    let work = r["work"].as_array().unwrap();
    assert_eq!(work[0]["kind"], "waits");
    assert!(work[0]["voluntary_switches"].as_u64().unwrap() >= 20, "every nap gives the CPU up: {r}");
}

#[test]
fn each_listener_gets_only_its_own_addresses_and_another_host_never_reaches_loopback() {
    crate::util::require("ip", "iproute2");
    crate::util::require("setpriv", "util-linux");
    let r = report(&["bind"], "bind");
    let destinations: Vec<&str> =
        r["destinations"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    let row = |bound: &str| -> Vec<String> {
        let rows = r["loopback"].as_array().unwrap();
        let row = rows.iter().find(|l| l["bound"] == bound).unwrap_or_else(|| panic!("no {bound}: {r}"));
        row["reach"].as_array().unwrap().iter().map(|c| c["result"].as_str().unwrap().to_owned()).collect()
    };
    let (yes, no) = ("connected", "refused");
    assert_eq!(&destinations[..2], ["127.0.0.1", "127.0.0.2"]);
    assert_eq!(&row("127.0.0.1")[..2], [yes, no]);
    assert_eq!(&row("127.0.0.2")[..2], [no, yes]);
    assert_eq!(&row("0.0.0.0")[..2], [yes, yes]);
    if destinations.contains(&"::1") {
        assert_eq!(row("0.0.0.0")[2], no, "0.0.0.0 is IPv4 only");
        assert_eq!(row("::1"), [no, no, yes]);
        assert_eq!(row(":: (dual-stack)"), [yes, yes, yes]);
        assert_eq!(row(":: (IPV6_V6ONLY)"), [no, no, yes]);
    }
    // The test runs as root: the namespaces were made, and are gone again.
    assert!(r["other_host_skipped"].is_null(), "{r}");
    let other: Vec<(&str, &str)> = r["other_host"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["bound"].as_str().unwrap(), h["reach"]["result"].as_str().unwrap()))
        .collect();
    assert_eq!(other, [("127.0.0.1", no), ("0.0.0.0", yes), ("198.18.0.1", yes)]);
    let made: Vec<&str> = r["namespaces"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(made.len(), 2, "{r}");
    let listed = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for name in made {
        assert!(
            !listed.lines().any(|l| l.split_whitespace().next() == Some(name)),
            "{name} left behind: {listed}"
        );
    }
    assert_eq!(r["unprivileged_bind"]["bound"], false, "nobody may not bind below the start: {r}");
    assert_eq!(r["unprivileged_bind"]["uid"], 65534);
    let range = r["ephemeral_range"].as_array().unwrap();
    let (low, high) = (range[0].as_u64().unwrap(), range[1].as_u64().unwrap());
    for port in r["client_ports"].as_array().unwrap() {
        assert!((low..=high).contains(&port.as_u64().unwrap()), "{r}");
    }
}

#[test]
fn arq_loses_exactly_the_pattern_delivers_everything_and_compares_with_the_textbook_bound() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("arq.svg");
    let args = ["arq", "--blocks", "6", "--lose", "1,3", "--lose-ack", "2", "--plot", plot.to_str().unwrap()];
    let r = report(&args, "arq");
    let runs = r["runs"].as_array().unwrap();
    let protocols: Vec<&str> = runs.iter().map(|r| r["protocol"].as_str().unwrap()).collect();
    assert_eq!(protocols, ["stop-and-wait", "go-back-n", "selective-repeat"]);
    assert_eq!(r["a"], 10.0);
    let link = r["link_kb_s"].as_f64().unwrap();
    for run in runs {
        assert_eq!(run["delivered"], true, "{run}");
        assert_eq!(run["data_lost"], 2, "the first sends of DATA 1 and 3: {run}");
        let datagrams = run["datagrams"].as_array().unwrap();
        let lost: Vec<&str> = datagrams
            .iter()
            .filter(|d| d["arrived_ms"].is_null())
            .map(|d| d["label"].as_str().unwrap())
            .collect();
        assert_eq!(lost.iter().filter(|l| l.starts_with("DATA")).count(), 2, "{lost:?}");
        assert!(lost.contains(&"DATA 1") && lost.contains(&"DATA 3"), "{lost:?}");
        assert!(lost.iter().all(|l| l.starts_with("DATA") || l.starts_with("ACK")), "{lost:?}");
        for d in datagrams.iter().filter(|d| d["arrived_ms"].is_number()) {
            assert!(d["arrived_ms"].as_f64() > d["sent_ms"].as_f64(), "{d}");
        }
        let sent = run["data_sent"].as_f64().unwrap();
        assert_eq!(sent, 6.0 + run["resent"].as_f64().unwrap(), "every block once, plus the resends: {run}");
        // The bound is the textbook formula for the loss this run saw.
        let (p, w) = (2.0 / sent, run["window"].as_f64().unwrap());
        let expected = match run["protocol"].as_str().unwrap() {
            "stop-and-wait" => (1.0 - p) / 21.0,
            "go-back-n" => w * (1.0 - p) / (21.0 * (1.0 - p + w * p)),
            _ => w * (1.0 - p) / 21.0,
        } * link;
        assert!((run["bound_kb_s"].as_f64().unwrap() - expected).abs() < 1e-6, "{run}");
    }
    assert!(runs[1]["resent"].as_u64() >= runs[2]["resent"].as_u64(), "Go-Back-N resends at least as much");
    let svg = std::fs::read_to_string(&plot).unwrap();
    let losses: usize = runs
        .iter()
        .map(|r| r["datagrams"].as_array().unwrap().iter().filter(|d| d["arrived_ms"].is_null()).count())
        .sum();
    assert_eq!(svg.matches('✕').count(), losses);

    let text = run(&["lab", "arq", "--blocks", "6", "--lose", "1,3"], b"");
    let text = text.ok();
    let lesson = lesson(text);
    let table = &text[text.find("\nprotocol").unwrap()..];
    let resent = |label: &str| table_row(table.trim_start(), label)[2].parse::<u64>().unwrap();
    if resent("go-back-n") > resent("selective-repeat") {
        assert!(lesson.contains(&format!("Go-Back-N resent {} blocks", resent("go-back-n"))), "{lesson}");
    }
    assert_eq!(
        text.matches(" ms  |").count(),
        text.matches("arrives").count() + text.matches("|  lost").count()
    );
}

#[test]
fn udp_shows_the_loss_and_tcp_delivers_everything_in_order_through_the_same_loss_and_delay() {
    crate::util::require("ip", "iproute2");
    let args = [
        "tcp-vs-udp",
        "--messages",
        "200",
        "--interval",
        "5ms",
        "--loss",
        "10%",
        "--delay",
        "15ms",
        "--seed",
        "3",
    ];
    let r = report(&args, "tcp_vs_udp");
    assert_eq!(r["ran"], true, "{r}");
    let path = r["impairment"].as_str().unwrap();
    assert!(path.contains("10.0% loss") && path.contains("15.00 ms delay") && path.contains("seed 3"), "{r}");
    let runs = r["runs"].as_array().unwrap();
    let (tcp, udp) = (&runs[0], &runs[1]);
    assert_eq!((&tcp["transport"], &udp["transport"]), (&json!("tcp"), &json!("udp")));
    assert_eq!(
        (&tcp["delivered"], &tcp["lost"], &tcp["out_of_order"]),
        (&json!(200), &json!(0), &json!(0)),
        "{tcp}"
    );
    assert!(tcp["retransmissions"].as_u64().unwrap() > 0, "10% loss under TCP makes it resend: {tcp}");
    assert_eq!(udp["delivered"].as_u64().unwrap() + udp["lost"].as_u64().unwrap(), 200, "{udp}");
    assert!(udp["lost"].as_u64().unwrap() > 0, "10% of 200 datagrams: {udp}");
    let latencies = |run: &Value| -> Vec<Option<f64>> {
        run["latencies_ms"].as_array().unwrap().iter().map(Value::as_f64).collect()
    };
    let nulls = latencies(udp).iter().filter(|l| l.is_none()).count() as u64;
    assert_eq!(nulls, udp["lost"].as_u64().unwrap());
    // The path's delay is a floor by construction: no message of either transport arrives sooner.
    for run in [tcp, udp] {
        let fastest = latencies(run).into_iter().flatten().fold(f64::INFINITY, f64::min);
        assert!(fastest >= 15.0, "{}: a message took {fastest} ms through a 15 ms path", run["transport"]);
    }
    let listed = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let namespaces = r["namespaces"].as_array().unwrap();
    assert_eq!(namespaces.len(), 2, "{r}");
    for name in namespaces {
        assert!(!listed.contains(name.as_str().unwrap()), "{name} left behind");
    }

    let text = run(&["lab", "tcp-vs-udp", "--messages", "100", "--interval", "5ms", "--loss", "10%"], b"");
    let text = text.ok();
    let late: u64 = table_row(text, "TCP")[7].parse().unwrap();
    let lesson = lesson(text);
    if late > 0 {
        assert!(lesson.contains(&format!("{late} of them were held up more than 100 ms")), "{lesson}");
    } else {
        assert!(!lesson.contains("held up more than 100 ms"), "{lesson}");
    }
    assert!(lesson.contains("TCP delivered all 100 in order"), "{lesson}");
}

#[test]
fn tcp_vs_udp_says_what_is_missing_when_it_cannot_make_loss_below_tcp() {
    crate::util::require("setpriv", "util-linux");
    let program = env!("CARGO_BIN_EXE_socketeer");
    let out = crate::util::run_command(
        std::process::Command::new("setpriv").args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
            program,
            "lab",
            "tcp-vs-udp",
        ]),
        b"",
    );
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stdout.contains("impair --tun"), "{}", out.stdout);
    assert!(out.stderr.contains("did not run"), "{}", out.stderr);
}
