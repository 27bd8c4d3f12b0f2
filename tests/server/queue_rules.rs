//! SPEC section 3 against the real server over real RTMP.

use std::time::Duration;

use crate::harness::{Options, Server};
use crate::publisher::Dj;
use motherstream::rtmp::client_io::ClientError;

fn refused(result: Result<Dj, ClientError>) -> String {
    match result {
        Ok(_) => panic!("publish was accepted"),
        Err(ClientError::Rejected { code, description }) => format!("{code}: {description}"),
        Err(other) => panic!("expected an RTMP error status, got {other}"),
    }
}

#[tokio::test]
async fn valid_key_goes_on_air_and_bad_keys_are_refused() {
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);

    let alice = Dj::publish(server.rtmp, &key).await.expect("valid key accepted");
    server.wait_for_queue(&["Alice"]).await;

    let malformed = refused(Dj::publish(server.rtmp, "not a key!").await);
    assert!(malformed.contains("malformed"), "{malformed}");
    server.wait_for_log("malformed stream key").await;

    let unknown = refused(Dj::publish(server.rtmp, "0123456789abcdef").await);
    assert!(unknown.contains("unknown stream key"), "{unknown}");
    server.wait_for_log("publish refused: unknown stream key").await;

    let again = refused(Dj::publish(server.rtmp, &key).await);
    assert!(again.contains("already publishing"), "{again}");

    let out = server.cli(&["user", "disable", "Bob"]);
    assert!(out.status.success());
    let disabled = refused(Dj::publish(server.rtmp, &bob_key).await);
    assert!(disabled.contains("disabled"), "{disabled}");

    assert_eq!(server.queue().await, ["Alice"], "refused publishers never reach the queue");
    alice.stop().await;
    server.wait_for_queue(&[]).await;
}

#[tokio::test]
async fn second_publisher_queues_and_clean_stop_promotes_it() {
    let server = Server::start(Options::default());
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let bob = Dj::publish(server.rtmp, &b).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;

    let status = server.get_json("/api/v1/status").await;
    assert_eq!(status["on_air"]["dj_name"], "Alice");
    assert_eq!(status["queue"][0]["dj_name"], "Bob");
    assert_eq!(status["queue"][0]["position"], 1);

    alice.stop().await;
    let took = server.wait_for_queue(&["Bob"]).await;
    assert!(took < Duration::from_secs(1), "promotion took {took:?}");
    server.wait_for_log("Alice stopped publishing cleanly").await;
    bob.stop().await;
}

#[tokio::test]
async fn queued_publisher_who_leaves_is_removed() {
    let server = Server::start(Options::default());
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let c = server.add_user("Carol", false);
    let _alice = Dj::publish(server.rtmp, &a).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let bob = Dj::publish(server.rtmp, &b).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    let _carol = Dj::publish(server.rtmp, &c).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob", "Carol"]).await;
    bob.drop_connection().await;
    server.wait_for_queue(&["Alice", "Carol"]).await;
}

#[tokio::test]
async fn slot_expiry_disconnects_the_lead_and_promotes_the_next() {
    let server = Server::start(Options { swap_interval: 3, ..Options::default() });
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let _bob = Dj::publish(server.rtmp, &b).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    let _ = alice.closed_by_server().await;
    server.wait_for_queue(&["Bob"]).await;
}

#[tokio::test]
async fn dropped_lead_who_reconnects_within_grace_keeps_the_slot() {
    let server = Server::start(Options { grace_period: 5, ..Options::default() });
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let _bob = Dj::publish(server.rtmp, &b).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;

    alice.drop_connection().await;
    server.wait_for_log("Alice stopped publishing").await;
    let status = server.get_json("/api/v1/status").await;
    assert_eq!(status["on_air"]["dj_name"], "Alice", "slot held during grace");
    assert_eq!(status["on_air"]["state"], "grace");

    let _alice = Dj::publish(server.rtmp, &a).await.expect("reconnect accepted");
    let status = server.get_json("/api/v1/status").await;
    assert_eq!(status["on_air"]["state"], "live");
    assert_eq!(server.queue().await, ["Alice", "Bob"]);
}

#[tokio::test]
async fn dropped_lead_who_does_not_return_is_replaced_after_grace() {
    let server = Server::start(Options { grace_period: 2, ..Options::default() });
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let _bob = Dj::publish(server.rtmp, &b).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    alice.drop_connection().await;
    server.wait_for_queue(&["Bob"]).await;
}

#[tokio::test]
async fn stalled_lead_is_disconnected_and_skipped() {
    let server = Server::start(Options { grace_period: 1, stall_timeout: 2, ..Options::default() });
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let _bob = Dj::publish(server.rtmp, &b).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    alice.stall().await;
    let _ = alice.closed_by_server().await;
    server.wait_for_log("stalled").await;
    server.wait_for_queue(&["Bob"]).await;
}

#[tokio::test]
async fn restart_restores_the_order_for_djs_who_reconnect() {
    let server = Server::start(Options { grace_period: 8, ..Options::default() });
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let c = server.add_user("Carol", false);
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let bob = Dj::publish(server.rtmp, &b).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    let carol = Dj::publish(server.rtmp, &c).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob", "Carol"]).await;
    // Give the persistence task a moment to write the last change (it writes on change).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let server = server.restart();
    for dj in [alice, bob, carol] {
        dj.drop_connection().await;
    }
    assert_eq!(server.queue().await, ["Alice", "Bob", "Carol"], "places held after restart");
    // Reconnect in a different order: each gets their old place back.
    let _carol = Dj::publish(server.rtmp, &c).await.unwrap();
    let _alice = Dj::publish(server.rtmp, &a).await.unwrap();
    let status = server.get_json("/api/v1/status").await;
    assert_eq!(status["on_air"]["dj_name"], "Alice");
    assert_eq!(status["on_air"]["state"], "live");
    assert_eq!(server.queue().await, ["Alice", "Bob", "Carol"]);
    // Bob never comes back: his place is dropped after the grace period.
    server.wait_for_queue(&["Alice", "Carol"]).await;
}
