//! The concurrency examples in examples/python: what each prints that holds
//! on any machine (counts and identities, never timings).

use std::collections::BTreeSet;

use super::python_net::python;

#[test]
fn threads_count_side_by_side_in_one_process_and_join() {
    let out = python("threads.py", &["--count", "3", "--delay", "0.05"], b"");
    let text = out.ok();
    let ticks: Vec<&str> = text.lines().filter(|l| l.contains(" name=worker-")).collect();
    assert_eq!(ticks.len(), 6, "{text}");
    for name in ["name=worker-1", "name=worker-2"] {
        assert_eq!(ticks.iter().filter(|l| l.contains(name)).count(), 3, "{text}");
    }
    let pids: BTreeSet<&str> =
        ticks.iter().filter_map(|l| l.split("pid=").nth(1)?.split(':').next()).collect();
    assert_eq!(pids.len(), 1, "threads share one process: {text}");
    assert!(text.contains("right after start: worker-1 alive? True"), "{text}");
    assert!(text.contains("after join: worker-1 alive? False; worker-2 returned 3"), "{text}");
}

#[test]
fn a_lock_keeps_every_update() {
    let out = python("locks.py", &["--threads", "4", "--count", "500"], b"");
    let text = out.ok();
    assert!(text.contains("4 threads x 500 increments = 2000 expected"), "{text}");
    for variant in ["with lock", "acquire/release"] {
        let line = text.lines().find(|l| l.starts_with(variant)).unwrap();
        assert!(line.ends_with("got     2000  lost 0"), "{line}");
    }
}

#[test]
fn the_queue_hands_every_item_to_exactly_one_consumer() {
    for slow in ["neither", "consumer", "producer"] {
        let out = python("producer_consumer.py", &["--count", "100", "--slow", slow], b"");
        let text = out.ok();
        assert!(text.contains("200 items made, 200 taken"), "{text}");
        assert!(text.contains("every item exactly once: True"), "{text}");
    }
}

#[test]
fn the_gil_example_runs_every_variant_and_checks_its_sums() {
    let out = python("gil.py", &["--count", "100000"], b"");
    let text = out.ok();
    assert!(text.contains(", GIL "), "{text}");
    for variant in ["sequential", "threads", "processes"] {
        let line =
            text.lines().find(|l| l.starts_with(variant)).unwrap_or_else(|| panic!("{variant}: {text}"));
        assert!(line.ends_with("sums exact: True"), "{line}");
    }
}

#[test]
fn processes_have_their_own_ids_and_their_own_memory() {
    let out = python("processes.py", &["--count", "2", "--delay", "0.05"], b"");
    let text = out.ok();
    let parent = text.split("the parent (pid ").nth(1).and_then(|r| r.split(')').next()).unwrap();
    let pids: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.contains(" worker-"))
        .filter_map(|l| l.split("pid=").nth(1)?.split_whitespace().next())
        .collect();
    assert_eq!(pids.len(), 2, "{text}");
    assert!(!pids.contains(parent), "{text}");
    assert!(text.contains("counted 2; its exit code 0"), "{text}");
    assert!(text.contains("still has counted = 0"), "{text}");
}

#[test]
fn the_deadlock_is_found_by_a_timeout_and_cured_by_one_order() {
    let out = python("deadlock.py", &["--timeout", "0.2", "--rounds", "50"], b"");
    let text = out.ok();
    assert!(text.contains("deadlock: both waited for each other"), "{text}");
    assert!(text.contains("{'worker-1': 50, 'worker-2': 50} rounds done"), "{text}");
}

#[test]
fn process_anatomy_reads_the_map_and_the_kernels_record() {
    let out = python("process_anatomy.py", &[], b"");
    let text = out.ok();
    for part in
        ["shared libraries", "heap", "Pid:", "PPid:", "Threads: 1", "with a second thread: Threads: 2"]
    {
        assert!(text.contains(part), "{part}: {text}");
    }
}
