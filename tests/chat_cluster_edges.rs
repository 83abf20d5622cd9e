//! The cluster's edge cases: a node restarted at once under its name, and a
//! node paused longer than its lease.

use crate::chat::Client;
use crate::chat_cluster::{Redis, lobby, node, until_who};
use crate::util::Daemon;

#[test]
fn a_node_restarted_at_once_under_its_name_says_its_old_clients_left() {
    let redis = Redis::start();
    let n1 = node(&redis, "n1", &[]);
    let n2 = node(&redis, "n2", &[]);
    let old = Client::named(&n1, "old");
    let mut watcher = Client::named(&n2, "watcher");
    until_who(&mut watcher, &lobby(&["old", "watcher"]));
    let port = n1.addr("chat", "tcp").port().to_string();
    drop(n1); // SIGKILL: no goodbye
    drop(old);
    let url = redis.url();
    let args = ["chat", "serve", "--port", &port, "--rate-limit", "off", "--redis", &url, "--node-id", "n1"];
    let again = Daemon::start(&args, 1);
    watcher.expect("*** old left lobby (server restarted)");
    let mut newcomer = Client::connect(&again);
    until_who(&mut watcher, &lobby(&[&newcomer.guest, "watcher"]));
    newcomer.send("hello again");
    watcher.expect(&format!("<{}> hello again", newcomer.guest));
}

#[test]
fn a_node_paused_past_its_lease_is_not_heard_until_it_says_hello_again() {
    let redis = Redis::start();
    let n1 = node(&redis, "n1", &["--lease", "1s"]);
    let n2 = node(&redis, "n2", &["--lease", "1s"]);
    let mut alice = Client::named(&n1, "alice");
    let mut bob = Client::named(&n2, "bob");
    until_who(&mut bob, &lobby(&["alice", "bob"]));
    n1.signal("-STOP");
    bob.expect("*** alice left lobby (server gone)");
    // Said while its server was paused: it reaches the server only when it resumes.
    alice.send("said while paused");
    n1.signal("-CONT");
    alice.expect(
        "*** this server was out of touch with the others for longer than its lease: they saw everyone \
         here leave, and lines said meanwhile may not have reached them",
    );
    let before = bob.expect("*** alice is back in lobby (server reachable again)");
    assert!(before.iter().all(|l| !l.contains("said while paused")), "{before:?}");
    alice.send("back for real");
    bob.expect("<alice> back for real");
}
