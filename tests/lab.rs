//! The concurrency lab: each experiment's claims, checked on small runs of the
//! real binary. Never timings: only facts that hold however slow the machine.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use crate::util::{Finished, require, run, run_command, socketeer};

fn ticks(out: &Finished) -> Vec<Value> {
    out.json_lines().into_iter().filter(|v| v["type"] == "tick").collect()
}

/// Each worker's numbers, in the order they were printed.
fn numbers_by_worker(ticks: &[Value]) -> BTreeMap<String, Vec<u64>> {
    let mut by_worker: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for t in ticks {
        by_worker.entry(t["worker"].as_str().unwrap().to_owned()).or_default().push(t["n"].as_u64().unwrap());
    }
    by_worker
}

fn distinct(ticks: &[Value], field: &str) -> BTreeSet<String> {
    ticks.iter().map(|t| t[field].to_string()).collect()
}

#[test]
fn threads_count_in_one_process_with_their_own_ids_and_join_hands_back_results() {
    let out = run(&["lab", "threads", "--count", "3", "--delay", "20ms", "--json"], b"");
    let ticks = ticks(&out);
    let report = out.json_of("threads");
    let expected: BTreeMap<String, Vec<u64>> =
        [("worker-1".to_owned(), vec![1, 2, 3]), ("worker-2".to_owned(), vec![1, 2, 3])].into();
    assert_eq!(numbers_by_worker(&ticks), expected);
    assert_eq!(distinct(&ticks, "pid"), BTreeSet::from([report["pid"].to_string()]));
    let tids = distinct(&ticks, "tid");
    assert_eq!(tids.len(), 2, "{tids:?}");
    assert!(!tids.contains(&report["main_tid"].to_string()));
    let workers = report["workers"].as_array().unwrap();
    assert_eq!(workers[0]["given_as"], "closure");
    assert_eq!(workers[1]["given_as"], "Runnable");
    assert!(workers.iter().all(|w| w["joined_result"] == 3), "{report}");
    assert_eq!(report["summary"]["threads"], 2);
    assert_eq!(report["summary"]["processes"], 1);

    let text = run(&["lab", "threads", "--count", "1", "--delay", "0s"], b"");
    assert!(text.ok().contains("worker-2 (Runnable): finished right after start?"), "{}", text.stdout);
    assert!(text.stdout.contains("join returned 1"));
    assert!(text.stdout.contains("Both threads slept at the same time"));
}

#[test]
fn processes_do_the_same_work_in_separate_processes() {
    let out = run(&["lab", "processes", "--count", "2", "--delay", "20ms", "--json"], b"");
    let ticks = ticks(&out);
    let report = out.json_of("processes");
    let expected: BTreeMap<String, Vec<u64>> =
        [("worker-1".to_owned(), vec![1, 2]), ("worker-2".to_owned(), vec![1, 2])].into();
    assert_eq!(numbers_by_worker(&ticks), expected);
    let pids = distinct(&ticks, "pid");
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(!pids.contains(&report["parent_pid"].to_string()));
    assert_eq!(report["processes"]["processes"], 2);
    assert_eq!(report["processes"]["lines"], 4);
    assert_eq!(report["threads"]["processes"], 1);
    assert_eq!(report["threads"]["threads"], 2);
    assert_eq!(report["threads"]["lines"], 4);
}

#[test]
fn every_cpu_variant_computes_the_exact_sum_and_the_plot_has_a_bar_for_each() {
    require("python3", "python3");
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("cpu.svg");
    let out = run(
        &[
            "lab",
            "cpu",
            "--count",
            "20000",
            "--rounds",
            "1",
            "--python",
            "--plot",
            plot.to_str().unwrap(),
            "--json",
        ],
        b"",
    );
    let report = out.json_of("cpu");
    assert_eq!(report["expected_sum"], 20_000.0 * 19_999.0 / 2.0);
    assert_eq!(report["python"]["status"], "ran", "{report}");
    let rows: Vec<(String, String, u64, bool)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_owned();
            (
                text("language"),
                text("variant"),
                r["workers"].as_u64().unwrap(),
                r["correct"].as_bool().unwrap(),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for language in ["rust", "python"] {
        for (variant, workers) in [("sequential", 1), ("threads", 3), ("processes", 3)] {
            expected.push((language.to_owned(), variant.to_owned(), workers, true));
        }
    }
    assert_eq!(rows, expected);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches(r#"height="20" fill="#).count(), 6, "{svg}");
    assert!(svg.contains("python threads (3)"));
}

#[test]
fn cpu_without_python_says_so_in_one_line_and_keeps_the_rust_rows() {
    let mut command = socketeer();
    command.env("PATH", "/nonexistent").args(["lab", "cpu", "--count", "1000", "--rounds", "1", "--python"]);
    let out = run_command(&mut command, b"");
    let text = out.ok();
    assert_eq!(text.matches("python3 is not installed").count(), 1, "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("rust ")).count(), 3, "{text}");
    assert!(!text.lines().any(|l| l.starts_with("python ")), "{text}");
}

#[test]
fn fetch_add_and_the_mutex_count_exactly_and_load_then_store_only_loses() {
    let report = run(&["lab", "race", "--threads", "4", "--count", "20000", "--json"], b"").json_of("race");
    assert_eq!(report["expected"], 80_000);
    let rows = report["rows"].as_array().unwrap();
    let variants: Vec<&str> = rows.iter().map(|r| r["variant"].as_str().unwrap()).collect();
    assert_eq!(variants, ["load-then-store", "fetch_add", "mutex"]);
    for r in rows {
        let (got, lost) = (r["got"].as_u64().unwrap(), r["lost"].as_u64().unwrap());
        assert_eq!(got + lost, 80_000, "{r}");
        if r["variant"] != "load-then-store" {
            assert_eq!(lost, 0, "{r}");
        }
    }
}

#[test]
fn every_produced_item_is_consumed_exactly_once_and_each_slow_side_makes_the_other_wait() {
    let args =
        ["--producers", "3", "--consumers", "2", "--capacity", "5", "--count", "300", "--work", "200us"];
    let report =
        run(&[&["lab", "producer-consumer", "--json"][..], &args].concat(), b"").json_of("producer_consumer");
    assert_eq!(report["items"], 900);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for r in rows {
        assert_eq!(
            (&r["consumed"], &r["missing"], &r["duplicated"]),
            (&900.into(), &0.into(), &0.into()),
            "{r}"
        );
        // A full queue must stop fast producers; an empty one must stop fast consumers.
        match r["scenario"].as_str().unwrap() {
            "slow-consumers" => assert!(r["producer_waits"].as_u64().unwrap() > 0, "{r}"),
            "slow-producers" => assert!(r["consumer_waits"].as_u64().unwrap() > 0, "{r}"),
            _ => {}
        }
    }
    let queues: BTreeSet<&str> = rows.iter().map(|r| r["queue"].as_str().unwrap()).collect();
    assert_eq!(queues, BTreeSet::from(["channel", "mutex-condvar"]));
}

#[test]
fn the_watchdog_finds_the_deadlock_and_one_lock_order_completes() {
    let out =
        run(&["lab", "deadlock", "--rounds", "20", "--hold", "5ms", "--timeout", "300ms", "--json"], b"");
    let report = out.json_of("deadlock");
    let stuck = &report["opposite_order"];
    assert_eq!(stuck["outcome"], "deadlocked", "{report}");
    assert_eq!(stuck["cycle"], serde_json::json!(["worker-1", "B", "worker-2", "A"]));
    assert_eq!(
        stuck["threads"],
        serde_json::json!([
            {"thread": "worker-1", "holds": ["A"], "waits_for": "B"},
            {"thread": "worker-2", "holds": ["B"], "waits_for": "A"},
        ])
    );
    assert_eq!(stuck["threads_exited"], true);
    let fixed = &report["global_order"];
    assert_eq!(fixed["outcome"], "completed", "{report}");
    assert_eq!(fixed["orders"], serde_json::json!([["A", "B"], ["A", "B"]]));
    assert_eq!(fixed["rounds_done"], serde_json::json!([20, 20]));
    assert_eq!(fixed["counter"], 40);
    assert_eq!(fixed["threads_exited"], true);
}

#[test]
fn threaded_servers_grow_a_thread_per_connection_and_async_ones_do_not() {
    let out = run(
        &["lab", "servers", "--connections", "5,20", "--duration", "200ms", "--size", "32", "--json"],
        b"",
    );
    let report = out.json_of("servers");
    let rows = report["rows"].as_array().unwrap();
    let shape: Vec<(&str, u64)> =
        rows.iter().map(|r| (r["model"].as_str().unwrap(), r["connections"].as_u64().unwrap())).collect();
    assert_eq!(shape, [("threads", 5), ("async", 5), ("threads", 20), ("async", 20)]);
    for r in rows {
        assert!(r["failure"].is_null(), "{r}");
        assert_eq!(r["served_at_once"], r["connections"], "every connection open at once: {r}");
        assert_eq!(r["errors"], 0, "{r}");
        assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
        assert!(r["loaded"]["rss_kib"].as_u64() >= r["idle"]["rss_kib"].as_u64(), "{r}");
    }
    let threads = |i: usize| rows[i]["loaded"]["threads"].as_u64().unwrap();
    assert!(threads(0) > 5 && threads(2) > 20, "a thread per connection: {report}");
    assert_eq!(threads(1), threads(3), "the async server's threads do not depend on connections: {report}");
}

#[test]
fn servers_skip_the_connection_counts_the_open_file_limit_cannot_hold() {
    let program = env!("CARGO_BIN_EXE_socketeer");
    let script =
        format!("ulimit -n 100 && exec {program} lab servers --connections 5,50,1000 --duration 100ms");
    let out = run_command(Command::new("sh").args(["-c", &script]), b"");
    let text = out.ok();
    assert!(text.contains("skipped 50, 1,000 connections"), "{text}");
    assert!(text.contains("open-file limit 100"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("threads ") || l.starts_with("async ")).count(), 2);
}

#[test]
fn bad_lab_arguments_are_usage_errors() {
    for (args, needle) in [
        (&["lab", "cpu", "--plot", "/nonexistent/dir/cpu.svg"][..], "/nonexistent/dir is not a directory"),
        (&["lab", "child", "{}"], "is not a task"),
        (&["lab", "race", "--threads", "0"], "--threads"),
        (&["lab", "servers", "--connections", "10,x"], "x"),
    ] {
        let out = run(args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {out:#?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
}
