//! Group runs through the communication hub.

use crate::{admit, sandbox};
use runtime::{Member, Outcome, RunResult};

/// Sends `count` messages of `size` bytes to `to` on its first call; the status is the
/// sum of the send codes. Later calls receive into a `buf`-byte buffer and return the
/// last recv code.
fn sender(to: &str, count: u32, size: u32) -> String {
    format!(
        r#"(module
          (import "agent" "send" (func $send (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "{to}")
          (global $calls (mut i32) (i32.const 0))
          (func (export "act") (result i32)
            (local $i i32) (local $sum i32)
            (if (global.get $calls) (then (return (i32.const 0))))
            (global.set $calls (i32.const 1))
            (block $done
              (loop $l
                (br_if $done (i32.ge_u (local.get $i) (i32.const {count})))
                (local.set $sum (i32.add (local.get $sum)
                  (call $send (i32.const 0) (i32.const {len}) (i32.const 100) (i32.const {size}))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $l)))
            (local.get $sum)))"#,
        len = to.len()
    )
}

/// Receives everything waiting into a `buf`-byte buffer; returns the number received,
/// or -100 + code when recv answered something else than a length or "none".
fn receiver(buf: u32) -> String {
    format!(
        r#"(module
          (import "agent" "recv" (func $recv (param i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "act") (result i32)
            (local $n i32) (local $r i32)
            (loop $l
              (local.set $r (call $recv (i32.const 0) (i32.const {buf})))
              (if (i32.ge_s (local.get $r) (i32.const 0)) (then
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (br $l))))
            (if (result i32) (i32.eq (local.get $r) (i32.const -1))
              (then (local.get $n))
              (else (i32.add (i32.const -100) (local.get $r))))))"#
    )
}

fn member(name: &str, agent: &std::sync::Arc<runtime::Agent>) -> Member {
    Member {
        name: name.into(),
        agent: agent.clone(),
        input: vec![],
    }
}

fn status(r: &runtime::MemberReport) -> i32 {
    match r.report.result {
        Some(RunResult::Status(s)) => s,
        other => panic!("{}: {other:?} ({:?})", r.name, r.report.trap_message),
    }
}

#[test]
fn messages_arrive_in_the_next_round() {
    let sb = sandbox("");
    let a = admit(&sb, &sender("b", 3, 10));
    let b = admit(&sb, &receiver(64));
    let g = sb
        .run_group(vec![member("a", &a), member("b", &b)])
        .expect("group");
    assert!(g.quiescent);
    assert_eq!(g.rounds, 2);
    assert_eq!(status(&g.members[0]), 0);
    assert_eq!(status(&g.members[1]), 3);
    assert_eq!(g.members[0].messages_sent, 3);
    assert_eq!(g.members[1].messages_received, 3);
    assert_eq!(g.members[1].calls, 2);
}

#[test]
fn recipients_by_agent_id_and_unknown_recipients() {
    let sb = sandbox("");
    let b = admit(&sb, &receiver(64));
    let a = admit(&sb, &sender(b.id(), 1, 4));
    let g = sb
        .run_group(vec![member("a", &a), member("b", &b)])
        .expect("group");
    assert_eq!(status(&g.members[0]), 0);
    assert_eq!(status(&g.members[1]), 1);

    let stranger = admit(&sb, &sender("nobody", 2, 4));
    let g = sb
        .run_group(vec![member("s", &stranger), member("b", &b)])
        .expect("group");
    assert_eq!(status(&g.members[0]), 2 * runtime::SEND_UNKNOWN_RECIPIENT);
}

#[test]
fn full_mailboxes_and_large_messages_are_refused() {
    let sb = sandbox("[limits]\nmailbox_messages = 2\nmessage_bytes = 8\n");
    let b = admit(&sb, &receiver(64));
    let a = admit(&sb, &sender("b", 3, 8));
    let g = sb
        .run_group(vec![member("a", &a), member("b", &b)])
        .expect("group");
    assert_eq!(status(&g.members[0]), runtime::SEND_MAILBOX_FULL);
    assert_eq!(status(&g.members[1]), 2);
    let big = admit(&sb, &sender("b", 1, 9));
    let g = sb
        .run_group(vec![member("a", &big), member("b", &b)])
        .expect("group");
    assert_eq!(status(&g.members[0]), runtime::SEND_TOO_LARGE);
}

#[test]
fn a_buffer_too_small_leaves_the_message_queued() {
    let sb = sandbox("[limits]\nmax_rounds = 5\n");
    let a = admit(&sb, &sender("b", 1, 32));
    let b = admit(&sb, &receiver(16));
    let g = sb
        .run_group(vec![member("a", &a), member("b", &b)])
        .expect("group");
    assert_eq!(status(&g.members[1]), -100 + runtime::RECV_TOO_SMALL);
    // the message never leaves the mailbox, so the run stops at max_rounds
    assert!(!g.quiescent);
    assert_eq!(g.rounds, 5);
}

#[test]
fn a_member_that_traps_leaves_the_group() {
    let sb = sandbox("");
    let a = admit(&sb, &sender("b", 1, 4));
    let b = admit(
        &sb,
        r#"(module (memory (export "memory") 1)
            (global $c (mut i32) (i32.const 0))
            (func (export "act") (result i32)
              (if (global.get $c) (then unreachable))
              (global.set $c (i32.const 1))
              i32.const 0))"#,
    );
    let g = sb
        .run_group(vec![member("a", &a), member("b", &b)])
        .expect("group");
    assert_eq!(g.members[1].report.outcome, Outcome::Unreachable);
    assert_eq!(g.members[0].report.outcome, Outcome::Ok);
    assert!(g.quiescent);
}

#[test]
fn typed_agents_cannot_join_a_group() {
    let sb = sandbox("");
    let t = admit(
        &sb,
        r#"(module (func (export "act") (param i64) (result i64) local.get 0))"#,
    );
    assert!(sb.run_group(vec![member("t", &t)]).is_err());
    assert!(sb.run_group(vec![]).is_err());
}
