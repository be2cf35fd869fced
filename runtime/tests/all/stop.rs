//! The emergency stop.

use crate::{admit, sandbox};
use runtime::{Input, Outcome};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

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
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let sb = sb.clone();
            let agent = agent.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let report = sb.run(&agent, Input::Bytes(vec![])).expect("run");
                (report, Instant::now())
            })
        })
        .collect();
    barrier.wait();
    std::thread::sleep(Duration::from_millis(100));
    let stopped_at = Instant::now();
    sb.stop_handle().stop();
    for h in handles {
        let (report, ended) = h.join().expect("thread");
        assert_eq!(
            report.outcome,
            Outcome::EmergencyStop,
            "{:?}",
            report.trap_message
        );
        // Generous bound for a shared machine; the bench measures the latency itself.
        assert!(ended.duration_since(stopped_at) < Duration::from_secs(2));
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
    assert!(report.wall >= Duration::from_millis(30));
}
