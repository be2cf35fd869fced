//! The emergency stop.

use crate::{admit, sandbox};
use runtime::{Input, Outcome};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

const SPIN: &str = r#"(module (func (export "act") (result i32)
    (local $i i64)
    (loop $l (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l))
    i32.const 0))"#;

#[test]
fn emergency_stop_interrupts_every_running_agent() {
    // Neither fuel nor the deadline would end these runs within the test.
    let sb = sandbox("[limits]\nfuel_per_call = 1000000000000000000\nwall_clock_ms = 600000\n");
    let agent = admit(&sb, SPIN);
    let n = 4;
    let barrier = Arc::new(Barrier::new(n + 1));
    let (done, reports) = mpsc::channel();
    for _ in 0..n {
        let (sb, agent, barrier, done) = (sb.clone(), agent.clone(), barrier.clone(), done.clone());
        std::thread::spawn(move || {
            barrier.wait();
            let _ = done.send(sb.run(&agent, Input::Bytes(vec![])).expect("run"));
        });
    }
    barrier.wait();
    // Let the runs get going; a run stopped before it started would end the same way.
    std::thread::sleep(Duration::from_millis(100));
    sb.stop_handle().stop();
    for _ in 0..n {
        // A watchdog, not a speed bound: without the stop these runs last 10 minutes
        // (the wall clock) or more; 60 s keeps a hung stop from hanging the suite. The
        // latency of a stop is measured by `cargo bench -p runtime --bench sandbox`.
        let report = match reports.recv_timeout(Duration::from_secs(60)) {
            Ok(report) => report,
            Err(RecvTimeoutError::Timeout) => panic!("a run was not stopped within 60 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("a run's thread panicked"),
        };
        assert_eq!(
            report.outcome,
            Outcome::EmergencyStop,
            "{:?}",
            report.trap_message
        );
    }
    // Runs started after the stop are not affected.
    let short = sandbox("[limits]\nfuel_per_call = 1000\n");
    let agent = admit(&short, SPIN);
    short.stop_handle().stop();
    let report = short.run(&agent, Input::Bytes(vec![])).expect("run");
    assert_eq!(report.outcome, Outcome::OutOfFuel);
}

#[test]
fn deadline_ends_a_run_that_fuel_would_not() {
    let sb = sandbox("[limits]\nfuel_per_call = 1000000000000000000\nwall_clock_ms = 30\n");
    let agent = admit(&sb, SPIN);
    let report = sb.run(&agent, Input::Bytes(vec![])).expect("run");
    assert_eq!(report.outcome, Outcome::Deadline);
    // The deadline is never early (a lower bound: it cannot fail on a slow machine).
    assert!(report.wall >= Duration::from_millis(30));
}
