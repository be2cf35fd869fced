//! Native tests that behave like the agent on wasm32: a panic comes back as the
//! sandbox's answer would (an error with its log line) or fails a `#[should_panic]`
//! test as expected, never aborting the test binary; tests that keep the host's lock
//! run one at a time, so an agent's shared `static` state is not raced.

// The example's `#![no_std]` applies to its own build, not as a module here.
#![allow(unused_attributes)]

#[path = "../examples/divide.rs"]
mod divide;

use agent_sdk::testing;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn a_panic_comes_back_with_its_log_line() {
    let _host = testing::reset(b"");
    assert_eq!(testing::call(|| divide::act(42, 5)), Ok(8));
    let p = testing::call(|| divide::act(1, 0)).expect_err("a panic");
    assert!(
        p.message.starts_with("panicked at ")
            && p.message.contains("divide.rs:10")
            && p.message.ends_with(": division by zero or overflow"),
        "{}",
        p.message
    );
    // in the logs, as the wasm32 panic handler writes it
    assert_eq!(testing::logs(), [p.message]);
}

#[test]
#[should_panic(expected = "division by zero or overflow")]
fn should_panic_tests_of_act_pass() {
    divide::act(1, 0);
}

#[test]
fn tests_that_keep_the_host_run_one_at_a_time() {
    static INSIDE: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..20 {
                    let _host = testing::reset(b"x");
                    let now = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    // a second reset in the same test keeps the one hold
                    let _again = testing::reset(b"y");
                    assert_eq!(agent_sdk::input_len(), 1);
                    INSIDE.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a test thread");
    }
    assert_eq!(MOST.load(Ordering::SeqCst), 1);
}
